"""Class activation maps, in-house.

One routine runs the hook, the backward pass (when needed) and the upsampling; a CAM
variant only supplies its weights (as in pytorch-grad-cam), per channel or, for
Layer-CAM, per position. With activations A_k and gradients G_k = d logit / d A_k at
the CAM layer (transformer tokens reshaped to their grid by the bundle):
- CAM (Zhou et al. 2016): w_k = weight of the linear head for the class; map = sum_k w_k A_k.
- Grad-CAM (Selvaraju et al. 2017): w_k = spatial mean of G_k.
- Grad-CAM++ (Chattopadhay et al. 2018): w_k = sum_ij alpha_kij ReLU(G_kij),
  alpha = G^2 / (2 G^2 + sum_ab A_kab G^3) (0 where that denominator is 0).
- XGrad-CAM (Fu et al. 2020): w_k = sum_ij (A_kij / sum_ab A_kab) G_kij.
- Layer-CAM (Jiang et al. 2021): positionwise w_kij = ReLU(G_kij).
- Eigen-CAM (Muhammad & Yeasin 2020): no gradient; the channel-centred activations
  projected on their first principal component (sign fixed, see `_eigencam_weights`).
- Score-CAM (Wang et al. 2020): no gradient; w_k = p_c(x * H_k) - p_c(baseline), H_k the
  upsampled A_k scaled to [0, 1], p_c the softmax probability, forward passes batched.
All but CAM: ReLU of the weighted sum. Maps are upsampled bilinearly to the input size
and not rescaled (the display normalises them).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..models.bundle import ModelBundle
from .registry import Method, Param, register

# (bundle, x, target, activations (N, K, h, w), gradients or None) -> weights that
# broadcast against the activations: (N, K, 1, 1) per channel or (N, K, h, w) per position.
WeightFn = Callable[[ModelBundle, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


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
    bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, weights_of: WeightFn, needs_gradient: bool,
    relu: bool = True, centred: bool = False,
) -> torch.Tensor:
    """sum_k w_k A_k at the bundle's CAM layer (A_k centred over positions when `centred`),
    optionally rectified, upsampled to the input. Gradients d logit / d A_k come from the
    layers after the CAM layer only: the graph of the layers before it is never recorded
    (default model, 8 images: peak memory +199 MiB against +629 MiB for the whole graph,
    identical maps; `bench/bench_speed.py`)."""
    layer = bundle.cam_module()
    x = x.detach()
    with torch.set_grad_enabled(needs_gradient), captured_output(layer, record_from_here=needs_gradient) as store:
        logits = bundle.model(x)
        output = store["output"]
        gradients = None
        if needs_gradient:
            (gradients,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), output)
            gradients = bundle.cam_feature_maps(gradients)
    activations = bundle.cam_feature_maps(output.detach())
    weights = weights_of(bundle, x.detach(), target, activations, gradients)
    if centred:
        activations = activations - activations.mean(dim=(2, 3), keepdim=True)
    cam = (weights * activations).sum(dim=1)
    if relu:
        cam = F.relu(cam)
    return F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, 0 where the denominator is 0."""
    zero = denominator == 0
    return torch.where(
        zero, torch.zeros_like(numerator), numerator / torch.where(zero, torch.ones_like(denominator), denominator)
    )


def _cam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    return bundle.head_module().weight[target].to(activations.dtype)[:, :, None, None]


def _needed(gradients: torch.Tensor | None) -> torch.Tensor:
    """The gradients a gradient-weighted variant is registered to receive (`needs_gradient`)."""
    if gradients is None:
        raise ValueError("this CAM variant weights channels by gradients: register it with needs_gradient=True")
    return gradients


def _gradcam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    return _needed(gradients).mean(dim=(2, 3), keepdim=True)


def _gradcam_plusplus_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    gradients = _needed(gradients)
    g2 = gradients.pow(2)
    denominator = 2 * g2 + activations.sum(dim=(2, 3), keepdim=True) * g2 * gradients
    alpha = _safe_divide(g2, denominator)
    return (alpha * F.relu(gradients)).sum(dim=(2, 3), keepdim=True)


def _xgradcam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    share = _safe_divide(activations, activations.sum(dim=(2, 3), keepdim=True))
    return (share * _needed(gradients)).sum(dim=(2, 3), keepdim=True)


def _layercam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    return F.relu(_needed(gradients))


def _eigencam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    """First right-singular vector of the channel-centred activations (positions x channels),
    the direction pytorch-grad-cam projects on. An SVD leaves its sign arbitrary (LAPACK
    builds differ: pytorch-grad-cam #315), so the sign is fixed here: the projection
    correlates positively with the channel-summed activations, i.e. the map is high
    where the layer is most active. Class-agnostic: the target is not used."""
    features = activations.flatten(2).transpose(1, 2).double()  # (N, h*w, K)
    centred = features - features.mean(dim=1, keepdim=True)
    direction = torch.linalg.svd(centred, full_matrices=False).Vh[:, 0]  # (N, K)
    projection = (centred @ direction[:, :, None])[..., 0]
    total = centred.sum(dim=2)
    sign = torch.where((projection * total).sum(dim=1) < 0, -1.0, 1.0).to(direction)
    return (direction * sign[:, None]).to(activations.dtype)[:, :, None, None]


def _scorecam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
    max_channels: int,
) -> torch.Tensor:
    """p_c(x * H_k) - p_c(baseline) per channel, where H_k is A_k upsampled bilinearly to
    the input and scaled to [0, 1], and the baseline is x * 0 (the mean image after
    normalisation). Masked images go through the model `bundle.batch_size` at a time.
    Only the `max_channels` channels of largest spatial variance are scored (all when
    the layer has fewer; "Faster Score-CAM" when it has more); the others, and constant
    channels (whose H_k is 0, i.e. the baseline itself), weigh 0."""
    n, k = activations.shape[:2]
    size = x.shape[-2:]
    with torch.no_grad():
        baseline = bundle.model(torch.zeros_like(x[:1])).float().softmax(dim=1)[0]
        weights = torch.zeros(n, k, dtype=activations.dtype, device=activations.device)
        variance = activations.flatten(2).var(dim=2, unbiased=False)
        for i in range(n):
            ranked = variance[i].argsort(descending=True)[: min(max_channels, k)]
            channels = ranked[variance[i, ranked] > 0]
            c = int(target[i])
            for chunk in channels.split(bundle.batch_size):
                upsampled = F.interpolate(
                    activations[i, chunk][:, None], size=size, mode="bilinear", align_corners=False
                )
                low = upsampled.amin(dim=(2, 3), keepdim=True)
                high = upsampled.amax(dim=(2, 3), keepdim=True)
                masks = _safe_divide(upsampled - low, high - low)
                scores = bundle.model(x[i : i + 1] * masks).float().softmax(dim=1)[:, c]
                weights[i, chunk] = (scores - baseline[c]).to(weights.dtype)
    return weights[:, :, None, None]


def _cam(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return class_activation_map(bundle, x, target, _cam_weights, needs_gradient=False, relu=False)


def _scorecam(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    def weights(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, activations: torch.Tensor,
                gradients: torch.Tensor | None) -> torch.Tensor:
        return _scorecam_weights(bundle, x, target, activations, gradients, max_channels=int(p["max_channels"]))

    return class_activation_map(bundle, x, target, weights, needs_gradient=False)


def register_cam_variant(
    key: str,
    label: str,
    weights_of: WeightFn,
    needs_gradient: bool,
    description: str,
    reference: str,
    centred: bool = False,
) -> Method:
    """Register a rectified CAM variant that differs from Grad-CAM only in its weights."""

    def compute(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
        return class_activation_map(bundle, x, target, weights_of, needs_gradient, centred=centred)

    return register(Method(
        key=key, label=label, compute=compute, description=f"{description}; upsampled bilinearly.", reference=reference,
        signed=False, family="cam", requires="cam_layer",
    ))


register_cam_variant(
    "gradcam", "Grad-CAM", _gradcam_weights, True,
    "ReLU of the CAM layer's feature maps weighted by their spatially averaged gradients",
    "Selvaraju et al. 2017, Grad-CAM",
)
register(
    Method(
        key="cam",
        label="CAM",
        compute=_cam,
        description="Feature maps before global average pooling weighted by the linear head's weights for the class; "
                    "upsampled bilinearly.",
        reference="Zhou et al. 2016, Learning Deep Features for Discriminative Localization",
        family="cam",
        requires="linear_head",
    )
)
register_cam_variant(
    "gradcam_plusplus", "Grad-CAM++", _gradcam_plusplus_weights, True,
    "ReLU of the feature maps weighted by sum_ij alpha_ij ReLU(G_ij), alpha = G^2 / (2 G^2 + sum_ab A_ab G^3)",
    "Chattopadhay et al. 2018, Grad-CAM++",
)
register_cam_variant(
    "xgradcam",
    "XGrad-CAM",
    _xgradcam_weights,
    True,
    "ReLU of the feature maps weighted by their gradients averaged with the maps' own normalised activations "
    "as weights",
    "Fu et al. 2020, Axiom-based Grad-CAM",
)
register_cam_variant(
    "layercam", "Layer-CAM", _layercam_weights, True,
    "ReLU of sum_k ReLU(G_kij) A_kij: every position weighted by its own positive gradient",
    "Jiang et al. 2021, LayerCAM",
)
register_cam_variant(
    "eigencam",
    "Eigen-CAM",
    _eigencam_weights,
    False,
    "ReLU of the channel-centred feature maps projected on their first principal component (no gradient, "
    "class-agnostic)",
    "Muhammad & Yeasin 2020, Eigen-CAM",
    centred=True,
)
register(Method(
    key="scorecam",
    label="Score-CAM",
    compute=_scorecam,
    description=(
        "ReLU of the feature maps weighted by the class probability of the image masked by each upsampled, "
        "[0, 1]-scaled map minus that of the baseline (mean image); one forward pass per scored channel, batched."
    ),
    reference="Wang et al. 2020, Score-CAM",
    params=(
        Param("max_channels", "Channels scored", 256, 1, 4096, 1,
              help="Forward passes per image: the channels of largest spatial variance are scored, the rest weigh 0. "
                   "At least the layer's channel count (e.g. 1280 for EfficientNet-Lite0) gives Score-CAM exactly."),
    ),
    signed=False,
    family="cam",
    requires="cam_layer",
    evals_per_image=lambda p, size: int(p["max_channels"]) + 1,
    batched_internally=True,
))
