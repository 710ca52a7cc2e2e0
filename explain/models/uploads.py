"""A user's own model file as a bundle: a state dict for a torchvision or timm
architecture, an ONNX graph, or a TorchScript file when the operator allows it. Every failure raises `CustomModelError`
with a message for the person who uploaded."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .bundle import ModelBundle
from .errors import CustomModelError


UPLOAD_KINDS = ("state_dict", "timm", "torchscript", "onnx")


@dataclass(frozen=True)
class UploadedModel:
    """What the user gave: the file, its kind and, for a state dict, the architecture and
    class count. `class_names` may be None (then "class 0", "class 1", ...)."""

    filename: str
    data: bytes
    kind: str  # one of UPLOAD_KINDS
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
    """Build a bundle from an upload through the model-source registry: a state dict for
    a torchvision architecture (`torchvision:ARCH` + the file), a timm architecture
    (`timm`), TorchScript or ONNX. The model id hashes the file, so caches never mix models."""
    from .sources import LoadRequest, WeightsFile, load_onnx_file, load_reference, load_torchscript_file

    if len(upload.data) > max_bytes:
        raise CustomModelError(
            f"{upload.filename}: the file is {len(upload.data) / 2**20:.0f} MB; this instance accepts up to "
            f"{max_bytes / 2**20:.0f} MB."
        )
    names = upload.class_names
    if names is not None and upload.num_classes and upload.num_classes != len(names):
        raise CustomModelError(
            f"The number of classes ({upload.num_classes}) differs from the class-names file ({len(names)} names)."
        )
    file = WeightsFile(upload.filename, upload.data)
    request = LoadRequest(weights=file, num_classes=upload.num_classes, class_names=names, device=device,
                          allow_torchscript=allow_torchscript, max_bytes=max_bytes)
    if upload.kind == "torchscript":
        return load_torchscript_file(file, dataclasses.replace(request, weights=None))
    if upload.kind == "onnx":
        return load_onnx_file(file, dataclasses.replace(request, weights=None))
    if upload.kind not in UPLOAD_KINDS:
        raise CustomModelError(f"Unknown model kind {upload.kind!r}; expected one of {', '.join(UPLOAD_KINDS)}.")
    if not upload.architecture:
        raise CustomModelError("Choose the architecture the weights belong to.")
    source = "timm" if upload.kind == "timm" else "torchvision"
    if source == "torchvision":
        from .zoo import zoo_model_names

        if upload.architecture not in zoo_model_names():
            raise CustomModelError(
                f"Unknown architecture {upload.architecture!r}; choose a torchvision classification model.")
        if not (upload.num_classes or names):
            raise CustomModelError("The number of classes must be at least 1.")
    return load_reference(f"{source}:{upload.architecture}", request)
