"""The operator's own architecture: a Python factory `package.module:function` named on the
command line or in the operator's configuration (never by a visitor: importing runs code),
which builds the `nn.Module`, plus a weights file read weights-only. The module may set
`PREPROCESSING` (keyword arguments of `make_bundle`: input_size, resize_size, mean, std),
`CLASS_NAMES` and `CAM_LAYERS` ((layer, linear head or None): where CAM methods look); else
ImageNet preprocessing and the CAM layer of a known architecture or the last convolution."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from torch import nn

from ..architectures import CamLayers, architecture_cam_layers, last_convolution
from ..bundle import ModelBundle
from ..errors import CustomModelError
from ..preprocessing import IMAGENET_MEAN, IMAGENET_STD
from ..state_dicts import first_line, read_state_dict
from .registry import LoadRequest, WeightsNeed, finish_bundle
from .weights import load_fitting


def resolve_factory(ref: str) -> tuple[ModuleType, Callable[..., Any]]:
    """The module and function `package.module:function` names."""
    module_name, sep, function_name = ref.partition(":")
    if not sep or not module_name or not function_name.isidentifier():
        raise CustomModelError(f"{ref!r}: a factory is named package.module:function.")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # importing the operator's code may raise anything
        raise CustomModelError(
            f"factory {ref}: importing {module_name} failed ({type(exc).__name__}: {first_line(exc)})."
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise CustomModelError(f"factory {ref}: {module_name} has no function {function_name}.")
    return module, function


def build_from_factory(ref: str, num_classes: int | None) -> tuple[ModuleType, nn.Module]:
    """Call the factory (with `num_classes=` when it takes it and a count was given)."""
    module, function = resolve_factory(ref)
    takes_classes = "num_classes" in inspect.signature(function).parameters
    try:
        model = function(num_classes=num_classes) if takes_classes and num_classes else function()
    except Exception as exc:  # the operator's code may raise anything: one message, the app stays up
        raise CustomModelError(f"factory {ref} raised {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise CustomModelError(f"factory {ref} returned {type(model).__name__}, not a torch.nn.Module.")
    return module, model


@dataclass(frozen=True)
class FactoryPreprocessing:
    """The factory module's `PREPROCESSING` (ImageNet's by default); one mean and std for a
    grayscale model, e.g. one trained on MNIST."""

    input_size: int = 224
    resize_size: int = 256
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD


@dataclass(frozen=True)
class FactorySource:
    name: str = "factory"
    label: str = "Your own architecture"
    reference: str = "package.module:function building the nn.Module (operator only)"
    weights: WeightsNeed = "required"
    description: str = "Your own nn.Module code: a factory function plus state-dict checkpoints (read weights-only)."

    def load(self, ref: str, request: LoadRequest) -> ModelBundle:
        assert request.weights is not None  # the registry checks `weights = "required"`
        module, model = build_from_factory(ref, request.num_classes)
        state = read_state_dict(request.weights.data, request.weights.name, request.max_bytes)
        model = load_fitting(model, state, request.weights.name, f"the model {ref} builds").eval()
        preprocessing = FactoryPreprocessing(**dict(getattr(module, "PREPROCESSING", {}) or {}))
        names = getattr(module, "CLASS_NAMES", None)
        digest = request.weights.sha256
        return finish_bundle(
            f"{ref.rpartition(':')[2]} ({request.weights.name})",
            model,
            request,
            preprocessing,
            CamLayers(*module.CAM_LAYERS)
            if getattr(module, "CAM_LAYERS", None)
            else architecture_cam_layers(model) or last_convolution(model),
            weights=f"{ref} + {request.weights.name} (sha256 {digest[:12]})",
            weights_sha256=digest,
            source=self.name,
            model_names=list(names) if names else None,
        )
