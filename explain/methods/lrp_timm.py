"""Zennit canonizers for timm's ResNet family (resnet*, resnext*, wide_resnet*, the `test_resnet`
tiny model), which Zennit 0.5.1 does not cover: its own `ResNetCanonizer` knows torchvision's
blocks only. In-house because no library has them; built like Zennit's torchvision one:

- every BatchNorm merged into the convolution right before it (named pairs: the stem, each
  block's conv/bn pairs, the shortcut's conv + bn), exactly (`ExactMergeBatchNorm`'s fix);
- the residual add of each block goes through Zennit's `Sum` module (Norm rule), so
  relevance splits between the branches instead of being counted twice.

A block with squeeze-excitation, anti-aliasing, drop-block or a non-ReLU activation is
refused with the reason (its forward has more than the rules cover).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
from torch import nn
from zennit.canonizers import AttributeCanonizer, CompositeCanonizer, MergeBatchNorm, NamedMergeBatchNorm
from zennit.layer import Sum


class ExactNamedMergeBatchNorm(NamedMergeBatchNorm):
    """Zennit's `NamedMergeBatchNorm` with the emptied BatchNorm an exact identity (as
    `lrp.ExactMergeBatchNorm`: running variance 1 - eps instead of 1)."""

    @staticmethod
    def merge_batch_norm(modules: Any, batch_norm: nn.Module) -> None:
        MergeBatchNorm.merge_batch_norm(modules, batch_norm)
        variance: Any = batch_norm.running_var
        eps: Any = batch_norm.eps
        variance.data = torch.full_like(variance.data, 1.0 - float(eps))


def is_timm_resnet(model: nn.Module) -> bool:
    return type(model).__name__ == "ResNet" and type(model).__module__ == "timm.models.resnet"


def _sequence_pairs(prefix: str, sequence: nn.Module) -> list[tuple[list[str], str]]:
    """(convolution, BatchNorm) pairs of consecutive children of a Sequential."""
    children = list(sequence.named_children())
    return [
        ([f"{prefix}.{a}"], f"{prefix}.{b}")
        for (a, first), (b, second) in pairwise(children)
        if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d)
    ]


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (f"{layer}.{name}", block)
        for layer in ("layer1", "layer2", "layer3", "layer4")
        for name, block in getattr(model, layer).named_children()
    ]


def batch_norm_pairs(model: nn.Module) -> list[tuple[list[str], str]]:
    """Every (convolution, BatchNorm) pair of a timm ResNet, by module name."""
    if isinstance(model.conv1, nn.Sequential):  # deep stem: conv-bn-act x2, conv; then `bn1`
        pairs = _sequence_pairs("conv1", model.conv1)
        pairs.append(([f"conv1.{len(model.conv1) - 1}"], "bn1"))
    else:
        pairs = [(["conv1"], "bn1")]
    for name, block in _blocks(model):
        pairs += [([f"{name}.conv{i}"], f"{name}.bn{i}") for i in (1, 2, 3) if hasattr(block, f"conv{i}")]
        if isinstance(block.downsample, nn.Sequential):
            pairs += _sequence_pairs(f"{name}.downsample", block.downsample)
    return pairs


def unsupported_block(model: nn.Module) -> str | None:
    """Why a timm ResNet's blocks are beyond these canonizers, or None."""
    for name, block in _blocks(model):
        for part in ("se", "drop_path"):
            if getattr(block, part, None) is not None and not isinstance(getattr(block, part), nn.Identity):
                return f"its block {name} has {part} ({type(getattr(block, part)).__name__})"
        for part in ("aa", "drop_block"):
            if not isinstance(getattr(block, part, nn.Identity()), nn.Identity):
                return f"its block {name} has {part} ({type(getattr(block, part)).__name__})"
        activations = [m for n, m in block.named_children() if n.startswith("act")]
        if not all(isinstance(m, nn.ReLU) for m in activations):
            return f"its block {name} uses {', '.join(sorted({type(m).__name__ for m in activations}))}, not ReLU"
    return None


class _ResidualSumCanonizer(AttributeCanonizer):
    """The block's `x += shortcut` through a Zennit `Sum` module."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module) -> dict[str, Any] | None:
        kind = type(module).__name__
        if type(module).__module__ == "timm.models.resnet" and kind in ("BasicBlock", "Bottleneck"):
            forward = cls.basic_forward if kind == "BasicBlock" else cls.bottleneck_forward
            return {"forward": forward.__get__(module), "canonizer_sum": Sum()}
        return None

    @staticmethod
    def basic_forward(block: Any, x: torch.Tensor) -> torch.Tensor:
        out = block.act1(block.bn1(block.conv1(x)))
        out = block.bn2(block.conv2(out))
        shortcut = block.downsample(x) if block.downsample is not None else x
        return block.act2(block.canonizer_sum(torch.stack([out, shortcut], dim=-1)))

    @staticmethod
    def bottleneck_forward(block: Any, x: torch.Tensor) -> torch.Tensor:
        out = block.act1(block.bn1(block.conv1(x)))
        out = block.act2(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
        shortcut = block.downsample(x) if block.downsample is not None else x
        return block.act3(block.canonizer_sum(torch.stack([out, shortcut], dim=-1)))


class TimmResNetCanonizer(CompositeCanonizer):
    """Canonizer for one timm ResNet: its BatchNorms merged by name, residual adds as `Sum`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__((ExactNamedMergeBatchNorm(batch_norm_pairs(model)), _ResidualSumCanonizer()))
