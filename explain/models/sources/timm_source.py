"""timm: any `timm.list_models()` name, with weights from a local file (`.safetensors` or a
weights-only `.pth`) or, where the operator allows downloads, timm's pretrained weights.
Preprocessing from `timm.data.resolve_model_data_config`; class names from a file, else
ImageNet's for 1000-class models."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..architectures import architecture_cam_layers, last_convolution
from ..bundle import ModelBundle
from ..errors import CustomModelError, ModelUnavailableError
from ..preprocessing import Preprocessing
from ..state_dicts import first_line, read_state_dict
from ..zoo import imagenet_class_names, skeleton
from .registry import LoadRequest, WeightsNeed, finish_bundle
from .weights import load_fitting, tensors_sha256


def timm_preprocessing(model: nn.Module) -> Preprocessing:
    """timm's data config as the bundle's resize + center crop + normalisation
    (resize = input / crop_pct, as timm's eval transform does)."""
    import timm.data

    config = timm.data.resolve_model_data_config(model)
    size = int(config["input_size"][-1])
    crop_pct = float(config.get("crop_pct") or 1.0)
    return Preprocessing(size, max(size, math.floor(size / crop_pct)), tuple(config["mean"]), tuple(config["std"]))


def _classes_in(state: dict[str, torch.Tensor], model_name: str) -> int | None:
    """The class count of a timm state dict, read from its classifier's weight."""
    import timm

    classifier = timm.models.get_pretrained_cfg_value(model_name, "classifier") or "head"
    weight = state.get(f"{classifier}.weight")
    return int(weight.shape[0]) if weight is not None and weight.dim() >= 1 else None


def _check_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelUnavailableError(f"Unknown timm model {name!r}.{hint}")


def _build(name: str, num_classes: int) -> nn.Module:
    """The architecture with `num_classes` outputs, on the meta device when timm allows it."""
    import timm

    try:
        return skeleton(lambda: timm.create_model(name, pretrained=False, num_classes=num_classes))
    except (RuntimeError, NotImplementedError):  # constructors that read a parameter's values
        return timm.create_model(name, pretrained=False, num_classes=num_classes)


@dataclass(frozen=True)
class TimmSource:
    name: str = "timm"
    label: str = "timm"
    reference: str = "a timm model name (timm.list_models()), e.g. convnext_tiny.fb_in1k"
    weights: WeightsNeed = "optional"
    description: str = (
        "A timm architecture with your weights file (.safetensors / .pth, read weights-only), "
        "or timm's pretrained weights where downloads are allowed."
    )

    def load(self, ref: str, request: LoadRequest) -> ModelBundle:
        import timm

        _check_name(ref)
        if request.weights is not None:
            state = read_state_dict(request.weights.data, request.weights.name, request.max_bytes)
            classes = request.num_classes or _classes_in(state, ref) or 1000
            model = load_fitting(
                _build(ref, classes), state, request.weights.name, f"timm {ref} with {classes} classes"
            )
            digest, weights = request.weights.sha256, f"{request.weights.name} (sha256 {request.weights.sha256[:12]})"
        elif request.allow_downloads:
            try:
                options: dict[str, Any] = {"num_classes": request.num_classes} if request.num_classes else {}
                model = timm.create_model(ref, pretrained=True, **options)
            except (OSError, RuntimeError, ValueError) as exc:
                raise ModelUnavailableError(
                    f"timm could not fetch the weights of {ref!r} ({first_line(exc)})."
                ) from None
            digest, weights = tensors_sha256(model.state_dict()), f"timm pretrained {ref}"
        else:
            raise CustomModelError(
                f"timm:{ref} needs a weights file (--weights), or downloads allowed to fetch "
                f"timm's pretrained weights (--allow-downloads; allow_downloads = true on a server)."
            )
        model.eval()
        cam = architecture_cam_layers(model) or last_convolution(model)
        outputs = model.num_classes if isinstance(getattr(model, "num_classes", None), int) else None
        names = imagenet_class_names() if outputs == 1000 else None
        return finish_bundle(
            f"timm:{ref}",
            model,
            request,
            timm_preprocessing(model),
            cam,
            weights=weights,
            weights_sha256=digest,
            source=self.name,
            model_names=names,
        )
