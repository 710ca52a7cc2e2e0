"""Class activation maps, in-house.

One routine runs the hook, the backward pass (when needed) and the upsampling; a CAM
variant only supplies how the channel weights are computed (as in pytorch-grad-cam):
- CAM (Zhou et al. 2016): w_k = weight of the linear head for the class; map = sum_k w_k A_k.
- Grad-CAM (Selvaraju et al. 2017): w_k = spatial mean of d logit / d A_k; map = ReLU(sum_k w_k A_k).
Maps are upsampled bilinearly to the input size.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..models.bundle import ModelBundle
from .registry import Method, register

WeightFn = Callable[[ModelBundle, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@contextmanager
def captured_output(module: nn.Module, record_from_here: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Record `module`'s forward output in the yielded dict; the hook is removed on exit,
    also when the forward or backward pass raises.

    `record_from_here`: the output is replaced by a detached copy that requires grad, so
    autograd records only the layers after `module` (with the input not requiring grad
    and the parameters frozen, nothing before it is recorded at all). The stored tensor
    is that leaf; the network goes on with a clone of it, which later in-place layers
    (`ReLU(inplace=True)`) may modify.
    """
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        if not record_from_here:
            store["output"] = output
            return None
        store["output"] = output.detach().requires_grad_(True)
        return store["output"].clone()

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def class_activation_map(
    bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, channel_weights: WeightFn, needs_gradient: bool, relu: bool
) -> torch.Tensor:
    """sum_k w_k A_k at the bundle's CAM layer, (optionally) rectified, upsampled to the input.
    Gradients d logit / d A_k come from the layers after the CAM layer only: the graph of
    the layers before it is never recorded (default model, 8 images: peak memory +199 MiB
    against +629 MiB for the whole graph, identical maps; `bench/bench_speed.py`)."""
    layer = bundle.model.get_submodule(bundle.cam_layer)
    x = x.detach()
    with torch.set_grad_enabled(needs_gradient), captured_output(layer, record_from_here=needs_gradient) as store:
        logits = bundle.model(x)
        activations = store["output"]
        gradients = None
        if needs_gradient:
            (gradients,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), activations)
    weights = channel_weights(bundle, activations.detach(), target, gradients)
    cam = torch.einsum("nk,nkhw->nhw", weights, activations.detach())
    if relu:
        cam = F.relu(cam)
    return F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def _gradcam_weights(bundle: ModelBundle, activations: torch.Tensor, target: torch.Tensor, gradients: torch.Tensor | None) -> torch.Tensor:
    return gradients.mean(dim=(2, 3))


def _cam_weights(bundle: ModelBundle, activations: torch.Tensor, target: torch.Tensor, gradients: torch.Tensor | None) -> torch.Tensor:
    head = bundle.model.get_submodule(bundle.linear_head)
    return head.weight[target].to(activations.dtype)


def _gradcam(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return class_activation_map(bundle, x, target, _gradcam_weights, needs_gradient=True, relu=True)


def _cam(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return class_activation_map(bundle, x, target, _cam_weights, needs_gradient=False, relu=False)


register(Method(
    key="gradcam",
    label="Grad-CAM",
    compute=_gradcam,
    description="ReLU of the CAM layer's feature maps weighted by their spatially averaged gradients; upsampled bilinearly.",
    reference="Selvaraju et al. 2017, Grad-CAM",
    signed=False,
    family="cam",
    requires="cam_layer",
))
register(Method(
    key="cam",
    label="CAM",
    compute=_cam,
    description="Feature maps before global average pooling weighted by the linear head's weights for the class; upsampled bilinearly.",
    reference="Zhou et al. 2016, Learning Deep Features for Discriminative Localization",
    family="cam",
    requires="linear_head",
))
