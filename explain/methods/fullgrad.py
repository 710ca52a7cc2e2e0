"""FullGrad (Srinivas & Fleuret 2019), in-house, post-processed as pytorch-grad-cam 1.5.7.

FullGrad splits the logit into the input-gradient term and one bias-gradient term per
layer with a bias. The map sums, at input size:
- |x ⊙ d y / d x|, each colour channel scaled to [0, 1], summed over channels;
- per convolution / BatchNorm layer with a bias b, |b_k · d y / d O_k| (O the layer's
  output), each channel scaled to [0, 1], summed over channels, upsampled bilinearly.
BatchNorm's bias is its effective one, beta - mu gamma / sqrt(var + eps). The scaling
is the peer's (x - min) / (1e-7 + max - min): part of the method's definition there, so
kept exactly. No CAM layer: every such layer counts. Layers are found with `isinstance`
(the peer matches the exact types `nn.Conv2d` / `nn.BatchNorm2d`, so it misses their
subclasses, e.g. timm's BatchNormAct2d or padded convolutions).

In-house because the peer keeps every layer's gradient at full size and scales and
upsamples each channel separately (50 BatchNorms x hundreds of channels x 224²);
here each layer is scaled per channel at its own resolution, summed over channels and
upsampled once (upsampling is linear, so the sum is the same), and one backward pass
gives all gradients at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..models.bundle import ModelBundle
from .cam import AUG_SMOOTH, EIGEN_SMOOTH, principal_projection, smoothed, smoothing_cost, target_logits
from .registry import Method, register

BiasLayer = nn.Conv2d | nn.BatchNorm2d


def bias_layers(model: nn.Module) -> list[BiasLayer]:
    """The convolutions and BatchNorms of `model` that add a bias (FullGrad's layers)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) and m.bias is not None]


def effective_bias(layer: BiasLayer) -> torch.Tensor:
    """The bias a layer adds per output channel: a BatchNorm's beta - mu gamma / sqrt(var + eps)
    in eval mode (the FullGrad authors' `tensor_extractor`), a convolution's own bias."""
    bias = cast(torch.Tensor, layer.bias)
    if isinstance(layer, nn.BatchNorm2d) and layer.running_mean is not None and layer.running_var is not None:
        weight = layer.weight if layer.weight is not None else torch.ones_like(layer.running_var)
        return bias - layer.running_mean * weight / torch.sqrt(layer.running_var + layer.eps)
    return bias


def peer_scaled(maps: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's `scale_cam_image` on each map (..., h, w): (x - min) / (1e-7 + max - min)."""
    shifted = maps - maps.amin(dim=(-2, -1), keepdim=True)
    return shifted / (1e-7 + shifted.amax(dim=(-2, -1), keepdim=True))


@contextmanager
def _recorded_outputs(layers: list[BiasLayer]) -> Iterator[list[tuple[BiasLayer, torch.Tensor]]]:
    """Each call of the layers as (layer, output); the network goes on with a clone, so a
    later in-place operation (ReLU(inplace=True)) leaves the recorded output the layer's own."""
    calls: list[tuple[BiasLayer, torch.Tensor]] = []

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        calls.append((module, output))  # type: ignore[arg-type]
        return output.clone()

    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def fullgrad_terms(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """FullGrad's terms at input size (N, 3 + L, H, W): the three scaled input-gradient
    channels, then one map per bias layer call (channels scaled and summed)."""
    layers = bias_layers(bundle.model)
    size = x.shape[-2:]
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), _recorded_outputs(layers) as calls:
        logits = bundle.model(x)
        gradients = torch.autograd.grad(
            target_logits(logits, target).sum(), [x] + [out for _, out in calls], allow_unused=True
        )
    terms = [peer_scaled((gradients[0] * x).abs().detach())]
    for (layer, output), gradient in zip(calls, gradients[1:], strict=False):
        if gradient is None:
            gradient = torch.zeros_like(output)
        bias = effective_bias(layer).detach().to(gradient.dtype)
        term = peer_scaled((bias[None, :, None, None] * gradient).abs()).sum(dim=1, keepdim=True)
        terms.append(F.interpolate(term, size=size, mode="bilinear", align_corners=False))
    return torch.cat(terms, dim=1)


def fullgrad_maps(
    bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, eigen_smooth: bool = False
) -> torch.Tensor:
    """The sum of FullGrad's terms (N, H, W); with `eigen_smooth` as the peer: the terms
    scaled and shrunk to 1/8 of the input, their first principal component (sign fixed
    to correlate with the terms' sum), scaled and upsampled back."""
    terms = fullgrad_terms(bundle, x, target)
    if not eigen_smooth:
        return terms.sum(dim=1)
    size = x.shape[-2:]
    small = F.interpolate(peer_scaled(terms), size=(size[0] // 8, size[1] // 8), mode="bilinear", align_corners=False)
    projection = peer_scaled(principal_projection(small)[:, None])
    return F.interpolate(projection, size=size, mode="bilinear", align_corners=False)[:, 0]


def _fullgrad(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return smoothed(lambda view: fullgrad_maps(bundle, view, target, bool(p["eigen_smooth"])), x, p)


def _no_bias_layers(bundle: ModelBundle) -> str | None:
    if bias_layers(bundle.model):
        return None
    return f"FullGrad needs convolution or BatchNorm layers with biases; {bundle.name} has none."


register(Method(
    key="fullgrad",
    label="FullGrad",
    compute=_fullgrad,
    description=(
        "|x · dy/dx| plus |b · dy/dO| of every convolution and BatchNorm bias b (O the layer's output), each channel "
        "scaled to [0, 1], summed over channels and layers at input size (pytorch-grad-cam's post-processing)."
    ),
    reference="Srinivas & Fleuret 2019, Full-Gradient Representation for Neural Network Visualization",
    params=(AUG_SMOOTH, EIGEN_SMOOTH),
    signed=False,
    family="cam",
    evals_per_image=smoothing_cost(lambda p, size: 1),
    unavailable_when=_no_bias_layers,
))
