"""A user's own model as a bundle: a state dict for a torchvision architecture, or a
TorchScript file when the operator allows it. Every failure raises `CustomModelError`
with a message for the person who uploaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from .bundle import ModelBundle, make_bundle
from .errors import CustomModelError
from .preprocessing import preprocessing_for
from .state_dicts import build_torchvision_model, first_line, read_state_dict
from .torchscript import load_torchscript
from .zoo import CamLayers, zoo_cam_layers


@dataclass(frozen=True)
class UploadedModel:
    """What the user gave: the file, its kind and, for a state dict, the architecture and
    class count. `class_names` may be None (then "class 0", "class 1", ...)."""

    filename: str
    data: bytes
    kind: str  # "state_dict" or "torchscript"
    architecture: str | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None


def load_uploaded_model(
    upload: UploadedModel,
    *,
    allow_torchscript: bool,
    max_bytes: int,
    device: torch.device | str | None = None,
) -> ModelBundle:
    """Build a bundle from an upload: weights checked against the architecture, the
    class count against the class names and the model's output, preprocessing from
    the architecture, CAM layer and linear head where the family is known (else the
    last convolution; for ViT and Swin their token layer and its reshape). The model
    id hashes the file, so caches never mix models."""
    if len(upload.data) > max_bytes:
        raise CustomModelError(
            f"{upload.filename}: the file is {len(upload.data) / 2**20:.0f} MB; this instance accepts up to "
            f"{max_bytes / 2**20:.0f} MB."
        )
    names = list(upload.class_names) if upload.class_names is not None else None
    if upload.kind == "state_dict":
        if not upload.architecture:
            raise CustomModelError("Choose the torchvision architecture the state dict belongs to.")
        num_classes = upload.num_classes or (len(names) if names else 0)
        if names is not None and num_classes != len(names):
            raise CustomModelError(
                f"The number of classes ({num_classes}) differs from the class-names file ({len(names)} names)."
            )
        state = read_state_dict(upload.data, upload.filename, max_bytes)
        model = build_torchvision_model(upload.architecture, num_classes, state, upload.filename)
        preprocessing = preprocessing_for(upload.architecture)
        cam = zoo_cam_layers(upload.architecture, model)
        name = f"{upload.architecture} ({upload.filename})"
    elif upload.kind == "torchscript":
        model = load_torchscript(upload.data, upload.filename, allowed=allow_torchscript, max_bytes=max_bytes)
        preprocessing = preprocessing_for(None)
        cam = CamLayers(None, None)  # hooks do not run inside compiled TorchScript
        name = f"TorchScript ({upload.filename})"
        num_classes = upload.num_classes or (len(names) if names else 0)
    else:
        raise CustomModelError(f"Unknown model kind {upload.kind!r}; expected 'state_dict' or 'torchscript'.")
    outputs = output_count(model, preprocessing.input_size, upload.filename)
    if upload.kind == "torchscript" and not num_classes:
        num_classes = outputs
    if outputs != num_classes:
        raise CustomModelError(
            f"{upload.filename}: the model gives {outputs} outputs per image, but {num_classes} classes were given."
        )
    if names is not None and len(names) != num_classes:
        raise CustomModelError(f"The model has {num_classes} classes but the class-names file lists {len(names)}.")
    file_hash = hashlib.sha256(upload.data).hexdigest()
    bundle = make_bundle(
        name,
        model,
        names or [f"class {i}" for i in range(num_classes)],
        input_size=preprocessing.input_size,
        resize_size=preprocessing.resize_size,
        mean=preprocessing.mean,
        std=preprocessing.std,
        cam_layer=cam.layer,
        linear_head=cam.head,
        cam_reshape=cam.reshape,
        device=device,
        weights=f"uploaded {upload.kind.replace('_', ' ')} {upload.filename} (sha256 {file_hash[:12]})",
    )
    bundle.model_id = f"upload-{file_hash[:24]}"
    return bundle


def output_count(model: nn.Module, input_size: int, filename: str) -> int:
    """Classes the model predicts, from one forward pass on a zero image; a model that
    does not map (1, 3, H, W) to (1, K) logits is refused."""
    model.eval()  # in train mode the probe would update BatchNorm's running statistics
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, input_size, input_size))
    except Exception as exc:  # a user's model may raise anything; report it, keep the app alive
        raise CustomModelError(
            f"{filename}: the model failed on a 1 x 3 x {input_size} x {input_size} image ({type(exc).__name__}: "
            f"{first_line(exc)})."
        ) from None
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CustomModelError(f"{filename}: expected logits of shape (1, classes), got {shape}.")
    return int(out.shape[1])
