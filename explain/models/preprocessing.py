"""Preprocessing and CAM-layer settings of a model: torchvision's presets, the user's
overrides, and the same model re-wrapped with them."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass

from .bundle import ModelBundle
from .errors import CustomModelError
from .torchscript import ScriptedClassifier, scripted_conv_layer_names
from .zoo import zoo_model_names, zoo_preprocessing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to `resize_size`, center-crop `input_size`, normalise."""

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not 8 <= self.input_size <= 1024:
            raise CustomModelError(f"Input size must be between 8 and 1024 pixels, not {self.input_size}.")
        if self.resize_size < self.input_size:
            raise CustomModelError(
                f"Resize size ({self.resize_size}) must be at least the input size ({self.input_size})."
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise CustomModelError("Mean and std need three values each (R, G, B).")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            raise CustomModelError("Mean and std must be finite numbers (not nan or inf).")
        if any(s <= 0 for s in self.std):
            raise CustomModelError("Every std value must be positive.")


def architecture_names() -> list[str]:
    """torchvision classification architectures a state dict can be loaded into."""
    return zoo_model_names()


def preprocessing_for(architecture: str | None) -> Preprocessing:
    """torchvision's preset for the architecture (metadata only, no weights are read);
    ImageNet 224/256 when the architecture is unknown (e.g. TorchScript)."""
    if architecture in zoo_model_names():
        return Preprocessing(**zoo_preprocessing(architecture))
    return Preprocessing()


def preprocessing_of(bundle: ModelBundle) -> Preprocessing:
    return Preprocessing(bundle.input_size, bundle.resize_size, bundle.mean, bundle.std)


def cam_layer_options(base: ModelBundle) -> list[str]:
    """CAM layer candidates: the bundle's own layer first (for known families the
    feature maps right before pooling, which CAM needs), then every Conv2d, last first."""
    if isinstance(base.model, ScriptedClassifier):
        return []  # forward hooks do not run inside compiled TorchScript
    if base.cam_reshape is not None and base.cam_layer is not None:
        return [base.cam_layer]  # transformers: the token layer; the patch embedding is no feature map
    convs = list(reversed(scripted_conv_layer_names(base.model)))
    first = [base.cam_layer] if base.cam_layer else []
    return first + [c for c in convs if c not in first]


def with_settings(base: ModelBundle, preprocessing: Preprocessing, cam_layer: str | None) -> ModelBundle:
    """The same model (and lock) with other preprocessing or another CAM layer. CAM's
    linear head (and a transformer's token reshape) is kept only at the base layer.
    The model id records the settings, so cached maps never mix them."""
    if cam_layer is not None:
        try:
            base.model.get_submodule(cam_layer)
        except (AttributeError, RuntimeError):
            raise CustomModelError(f"{base.name} has no layer {cam_layer!r}.") from None
    if base.cam_reshape is not None and cam_layer not in (None, base.cam_layer):
        raise CustomModelError(
            f"{base.name} is a transformer: CAM methods use its token layer {base.cam_layer!r} only."
        )
    settings = (preprocessing.input_size, preprocessing.resize_size, preprocessing.mean, preprocessing.std, cam_layer)
    if settings == (base.input_size, base.resize_size, base.mean, base.std, base.cam_layer):
        return base
    digest = hashlib.sha1(repr(settings).encode()).hexdigest()[:10]
    return dataclasses.replace(
        base,
        input_size=preprocessing.input_size,
        resize_size=preprocessing.resize_size,
        mean=tuple(float(m) for m in preprocessing.mean),
        std=tuple(float(s) for s in preprocessing.std),
        cam_layer=cam_layer,
        linear_head=base.linear_head if cam_layer == base.cam_layer else None,
        cam_reshape=base.cam_reshape if cam_layer == base.cam_layer else None,
        model_id=f"{base.model_id}+{digest}",
    )


def parse_floats(text: str, what: str) -> tuple[float, float, float]:
    """'0.485, 0.456, 0.406' -> three floats (one value is repeated for the three channels)."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise CustomModelError(f"{what}: expected numbers separated by commas, got {text!r}.") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise CustomModelError(f"{what}: expected 1 or 3 numbers, got {len(values)}.")
    return tuple(values)  # type: ignore[return-value]
