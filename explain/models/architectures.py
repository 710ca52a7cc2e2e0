"""Where CAM methods look in a classifier, keyed on the architecture, not on the library
that built it: a ViT is a ViT whether torchvision, timm or Hugging Face made it.

Transformers: the CAM layer is the last block's *normalised input tokens* (the peers'
`blocks[-1].norm1`), which the block's attention mixes into the class token; the block's
output would give zero gradients at every patch token (only the class token reaches the
head). The prefix tokens (class, distillation, register tokens) are dropped and the
patch tokens laid out on their grid (`tokens:K` reshape). Swin gives its last stage's
tokens, which global average pooling and a linear head read: CAM is exact there. The
patch embedding is never chosen. CNNs: the last stage's feature maps before global
pooling; a linear head only where pooling is followed by exactly one linear layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

import torchvision
from torch import nn

from .bundle import conv_layer_names


class CamLayers(NamedTuple):
    """Where CAM methods look in a model: the layer, the linear head after global
    average pooling (None: CAM itself is unavailable) and how the layer's output
    becomes (N, C, h, w) feature maps (a `CAM_RESHAPES` name or "tokens:K"; None: it already is)."""

    layer: str | None
    head: str | None
    reshape: str | None = None


def _last_child(container: nn.Module) -> str:
    return list(container.named_children())[-1][0]


def _torchvision_transformer(model: nn.Module, prefix: str) -> CamLayers | None:
    if isinstance(model, torchvision.models.VisionTransformer):
        return CamLayers(f"{prefix}encoder.layers.{_last_child(model.encoder.layers)}.ln_1", None, "vit_tokens")
    if isinstance(model, torchvision.models.SwinTransformer):
        return CamLayers(f"{prefix}norm", f"{prefix}head", "channels_last")
    return None


def _timm_transformer(model: nn.Module, prefix: str) -> CamLayers | None:
    """timm ViT / DeiT (distilled: 2 prefix tokens) / EVA / ViTs with register tokens
    (`num_prefix_tokens` counts them all), and timm Swin (channels-last stages)."""
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and hasattr(model, "patch_embed") and len(blocks):
        prefix_tokens = int(getattr(model, "num_prefix_tokens", 1))
        norm = "norm1" if hasattr(blocks[-1], "norm1") else None
        if norm is not None:
            return CamLayers(f"{prefix}blocks.{len(blocks) - 1}.{norm}", None, f"tokens:{prefix_tokens}")
    if type(model).__name__ == "SwinTransformer" and type(model).__module__.startswith("timm."):
        head = getattr(getattr(model, "head", None), "fc", None)
        pooled = getattr(getattr(model.head, "global_pool", None), "pool_type", "") == "avg"
        return CamLayers(
            f"{prefix}norm", f"{prefix}head.fc" if isinstance(head, nn.Linear) and pooled else None, "channels_last"
        )
    return None


def _last_named(model: nn.Module, pattern: str) -> str | None:
    """The last module (in registration order, i.e. the deepest block) whose name matches."""
    names = [name for name, _ in model.named_modules() if re.search(pattern, name)]
    return names[-1] if names else None


# Hugging Face `AutoModelForImageClassification` families by `config.model_type`: how the
# CAM layer is found (its name changes between transformers versions: `encoder.layer` in 4.x,
# `layers` in 5.x), the reshape and the linear head.
_HF_FAMILIES: dict[str, tuple[str, str | None, str | None]] = {
    "vit": (r"\.layernorm_before$", "tokens:1", None),
    "deit": (r"\.layernorm_before$", "tokens:2", None),  # class + distillation token
    "swin": (r"^swin\.layernorm$", "tokens:0", "classifier"),
    "convnext": (r"encoder\.stages\.\d+$", None, None),  # a LayerNorm follows the pooling: no CAM
    "convnextv2": (r"encoder\.stages\.\d+$", None, None),
    "resnet": (r"encoder\.stages\.\d+$", None, "classifier.1"),
}


def _hugging_face(model: nn.Module, prefix: str) -> CamLayers | None:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    family = _HF_FAMILIES.get(model_type) if isinstance(model_type, str) else None
    layer = _last_named(model, family[0]) if family is not None else None
    if family is None or layer is None:
        return None
    head = (
        family[2]
        if family[2] and _has(model, family[2]) and isinstance(model.get_submodule(family[2]), nn.Linear)
        else None
    )
    return CamLayers(prefix + layer, prefix + head if head else None, family[1])


# timm CNN families whose global average pooling feeds one linear layer: (CAM layer, head).
_TIMM_CNN_HEADS: dict[str, tuple[str, str]] = {
    "ResNet": ("layer4", "fc"),
    "EfficientNet": ("bn2", "classifier"),
    "RegNet": ("final_conv", "head.fc"),
}


def _timm_cnn(model: nn.Module, prefix: str) -> CamLayers | None:
    if not type(model).__module__.startswith("timm.") or not hasattr(model, "feature_info"):
        return None
    known = _TIMM_CNN_HEADS.get(type(model).__name__)
    if known is not None and _has(model, known[0]) and _has(model, known[1]):
        layer, head = known
        return CamLayers(prefix + layer, prefix + head if isinstance(model.get_submodule(head), nn.Linear) else None)
    info: Any = model.feature_info
    last = info[-1]
    module = str(last.get("module", "")) if isinstance(last, dict) else ""
    return CamLayers(prefix + module, None) if module and _has(model, module) else None


def _has(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


RULES: tuple[Callable[[nn.Module, str], CamLayers | None], ...] = (
    _torchvision_transformer,
    _timm_transformer,
    _hugging_face,
    _timm_cnn,
)


def architecture_cam_layers(model: nn.Module, prefix: str = "") -> CamLayers | None:
    """CAM layers for a known architecture (any library), None when none is known.
    `prefix`: where `model` sits inside the bundle's module (e.g. "model." for a wrapper)."""
    for rule in RULES:
        found = rule(model, prefix)
        if found is not None:
            return found
    return None


def last_convolution(model: nn.Module) -> CamLayers:
    """The fallback: the last convolution (no linear head: CAM unavailable, Grad-CAM works)."""
    convs = conv_layer_names(model)
    return CamLayers(convs[-1] if convs else None, None)
