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
  projected on their first principal component (sign fixed, see `_principal_direction`).
- Score-CAM (Wang et al. 2020): no gradient; w_k = p_c(x * H_k) - p_c(baseline), H_k the
  upsampled A_k scaled to [0, 1], p_c the softmax probability, forward passes batched.
- HiResCAM (Draelos & Carin 2020): positionwise w_kij = G_kij.
- Ablation-CAM (Desai & Ramaswamy 2020): no gradient; w_k = (y_c - y_c with A_k = 0) / y_c,
  the ablations of all images batched.
- ShapleyCAM (Cai et al. 2025): Grad-CAM's weights on G - H A / 2 (one Hessian-vector product).
- FinerCAM (Zhang et al. 2025): Grad-CAM of a score that contrasts the class with the
  classes of nearest logits (`finer_score`).
All but CAM: ReLU of the weighted sum. Maps are upsampled bilinearly to the input size
and not rescaled (the display normalises them). Smoothing, where pytorch-grad-cam offers
it: `eigen_smooth` (the weighted maps' first principal component instead of their sum)
and `aug_smooth` (6 flipped / brightness-scaled views, each scaled to [0, 1], averaged).
Each variant is checked against pytorch-grad-cam 1.5.7 (tests/test_cam_family.py,
tests/test_cam_variants.py). FullGrad, which uses no CAM layer, is in `fullgrad.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..models.bundle import ModelBundle
from .registry import Method, MethodUnavailableError, Param, register

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


ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, target) -> (N,) scores to explain


def target_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The target class's logit per image: what every CAM variant but FinerCAM explains."""
    return logits.gather(1, target[:, None])[:, 0]


def _layer_gradients(score: torch.Tensor, output: torch.Tensor, hessian_corrected: bool) -> torch.Tensor:
    """d score / d output; with `hessian_corrected`, ShapleyCAM's G - H A / 2 (H the Hessian
    of the score in the layer's output, H A one Hessian-vector product by double backward).
    Where nothing after the layer is curved (ReLU, pooling, linear), H A = 0."""
    (gradients,) = torch.autograd.grad(score, output, create_graph=hessian_corrected)
    if not hessian_corrected or not gradients.requires_grad:
        return gradients.detach()
    (curvature,) = torch.autograd.grad(gradients, output, grad_outputs=output.detach(), allow_unused=True)
    return gradients.detach() if curvature is None else (gradients - 0.5 * curvature).detach()


def class_activation_map(
    bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, weights_of: WeightFn, needs_gradient: bool,
    relu: bool = True, centred: bool = False, *, score_of: ScoreFn = target_logits, hessian_corrected: bool = False,
    eigen_smooth: bool = False,
) -> torch.Tensor:
    """sum_k w_k A_k at the bundle's CAM layer (A_k centred over positions when `centred`),
    optionally rectified, upsampled to the input. Gradients d score / d A_k come from the
    layers after the CAM layer only: the graph of the layers before it is never recorded
    (default model, 8 images: peak memory +199 MiB against +629 MiB for the whole graph,
    identical maps; `bench/bench_speed.py`). `score_of` picks what is explained (the
    target logit by default); `hessian_corrected` hands `weights_of` ShapleyCAM's
    G - H A / 2 instead of G; `eigen_smooth` replaces the channel sum of w_k A_k by its
    projection on its first principal component (`principal_projection`)."""
    layer = cam_layer_of(bundle)
    x = x.detach()
    # Double backward needs attention's math kernel (the fused CPU/GPU kernels have no second derivative).
    kernels = sdpa_kernel([SDPBackend.MATH]) if hessian_corrected else nullcontext()
    with (
        kernels,
        torch.set_grad_enabled(needs_gradient),
        captured_output(layer, record_from_here=needs_gradient) as store,
    ):
        logits = bundle.model(x)
        output = store["output"]
        gradients = None
        if needs_gradient:
            gradients = _layer_gradients(score_of(logits, target).sum(), output, hessian_corrected)
            gradients = bundle.cam_feature_maps(gradients)
    activations = bundle.cam_feature_maps(output.detach())
    weights = weights_of(bundle, x.detach(), target, activations, gradients)
    if centred:
        activations = activations - activations.mean(dim=(2, 3), keepdim=True)
    weighted = weights * activations
    cam = principal_projection(weighted) if eigen_smooth else weighted.sum(dim=1)
    if relu:
        cam = F.relu(cam)
    return F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def _principal_direction(features: torch.Tensor) -> torch.Tensor:
    """First right-singular vector (N, K) of the channel-centred features (N, K, h, w) read
    as positions x channels: the direction pytorch-grad-cam's `get_2d_projection` projects
    on. An SVD leaves its sign arbitrary (LAPACK builds differ: pytorch-grad-cam #315), so
    the sign is fixed here: the projection correlates positively with the channel-summed
    features, i.e. the map is high where the summed features are."""
    positions = features.flatten(2).transpose(1, 2).double()  # (N, h*w, K)
    centred = positions - positions.mean(dim=1, keepdim=True)
    direction = torch.linalg.svd(centred, full_matrices=False).Vh[:, 0]  # (N, K)
    projection = (centred @ direction[:, :, None])[..., 0]
    total = centred.sum(dim=2)
    sign = torch.where((projection * total).sum(dim=1) < 0, -1.0, 1.0).to(direction)
    return (direction * sign[:, None]).to(features.dtype)


def principal_projection(features: torch.Tensor) -> torch.Tensor:
    """Eigen smoothing: the channel-centred features (N, K, h, w) projected on their first
    principal component (sign as in `_principal_direction`): maps (N, h, w)."""
    direction = _principal_direction(features)
    centred = features - features.mean(dim=(2, 3), keepdim=True)
    return (centred * direction[:, :, None, None]).sum(dim=1)


def min_max_scaled(maps: torch.Tensor) -> torch.Tensor:
    """Each map (..., H, W) scaled to [0, 1]; a constant map becomes 0."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    return _safe_divide(maps - low, maps.amax(dim=(-2, -1), keepdim=True) - low)


AUGMENTATIONS = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))


def augmentation_smoothed(maps_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Test-time augmentation as pytorch-grad-cam's `aug_smooth` (ttach: horizontal flip x
    multiplication of the normalised input by 0.9, 1, 1.1; 6 views): each view's map is
    flipped back, scaled to [0, 1] (each view counts the same, as the peer) and the views
    averaged. `maps_of(view)` -> (N, H, W) maps at input size."""
    total = torch.zeros(0)
    for flip, factor in AUGMENTATIONS:
        view = x * factor
        maps = maps_of(view.flip(-1) if flip else view)
        scaled = min_max_scaled(maps.flip(-1) if flip else maps)
        total = scaled if total.numel() == 0 else total + scaled
    return total / len(AUGMENTATIONS)


def smoothed(maps_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    """`maps_of(x)`, augmentation-smoothed when the method's `aug_smooth` parameter is on."""
    return augmentation_smoothed(maps_of, x) if p.get("aug_smooth", False) else maps_of(x)


def cam_layer_of(bundle: ModelBundle) -> nn.Module:
    """The bundle's CAM layer (the registry refuses CAM methods on bundles without one)."""
    if bundle.cam_layer is None:
        raise MethodUnavailableError(f"{bundle.name} has no CAM layer set.")
    return bundle.model.get_submodule(bundle.cam_layer)


def _given(gradients: torch.Tensor | None) -> torch.Tensor:
    """The gradients of a variant registered with `needs_gradient`."""
    if gradients is None:
        raise ValueError("this CAM variant needs the CAM layer's gradients")
    return gradients


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
    head = bundle.model.get_submodule(str(bundle.linear_head))
    return cast(torch.Tensor, head.weight)[target].to(activations.dtype)[:, :, None, None]


def _gradcam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    return _given(gradients).mean(dim=(2, 3), keepdim=True)


def _gradcam_plusplus_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    gradients = _given(gradients)
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
    return (share * _given(gradients)).sum(dim=(2, 3), keepdim=True)


def _layercam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    return F.relu(_given(gradients))


def _hirescam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    return _given(gradients)


def _eigencam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
) -> torch.Tensor:
    """The first principal direction of the activations (sign fixed: `_principal_direction`).
    Class-agnostic: the target is not used."""
    return _principal_direction(activations)[:, :, None, None]


def _strongest_channels(activations: torch.Tensor, score: torch.Tensor, max_channels: int) -> torch.Tensor:
    """Indices of the `max_channels` channels of `activations[i]` (K, h, w) of largest
    `score` (K,), those scoring 0 left out: they cannot change the map."""
    ranked = score.argsort(descending=True)[: min(max_channels, activations.shape[0])]
    return ranked[score[ranked] > 0]


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
            channels = _strongest_channels(activations[i], variance[i], max_channels)
            c = int(target[i])
            for chunk in channels.split(bundle.batch_size):
                upsampled = F.interpolate(
                    activations[i, chunk][:, None], size=size, mode="bilinear", align_corners=False
                )
                masks = min_max_scaled(upsampled)
                scores = bundle.model(x[i : i + 1] * masks).float().softmax(dim=1)[:, c]
                weights[i, chunk] = (scores - baseline[c]).to(weights.dtype)
    return weights[:, :, None, None]


@contextmanager
def _ablated_output(bundle: ModelBundle, channels: torch.Tensor) -> Iterator[None]:
    """While open, row r of the CAM layer's output has feature-map channel `channels[r]`
    set to 0 (on the bundle's feature-map view, so transformer tokens are ablated too)."""

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        ablated = output.clone()
        maps = bundle.cam_feature_maps(ablated)
        if maps.untyped_storage().data_ptr() != ablated.untyped_storage().data_ptr():
            raise MethodUnavailableError("Ablation-CAM cannot ablate this CAM layer's channels in place.")
        maps[torch.arange(len(channels), device=maps.device), channels.to(maps.device)] = 0
        return ablated

    handle = cam_layer_of(bundle).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _ablationcam_weights(
    bundle: ModelBundle,
    x: torch.Tensor,
    target: torch.Tensor,
    activations: torch.Tensor,
    gradients: torch.Tensor | None,
    max_channels: int,
) -> torch.Tensor:
    """(y_c - y_c(A with channel k zeroed)) / y_c per channel, y_c the target logit (the
    peer's score; 0 where y_c = 0). Channel ablations of all images are batched together,
    `bundle.batch_size` rows a pass. Only the `max_channels` channels of largest energy
    sum_ij A_kij^2 are ablated; the others, and channels that are 0 everywhere (zeroing
    them changes nothing), weigh 0 (as the peer's skipped channels).

    The ablated channel is set to 0, as in the paper; pytorch-grad-cam sets it to
    min(A) - 1e7 instead when the layer has values other than >= 0 with a 0 minimum,
    e.g. after SiLU or on transformer tokens, which swamps every later layer."""
    n, k = activations.shape[:2]
    with torch.no_grad():
        original = target_logits(bundle.model(x), target).to(activations.dtype)
        energy = activations.flatten(2).pow(2).sum(dim=2)
        rows = [(i, c) for i in range(n) for c in _strongest_channels(activations[i], energy[i], max_channels).tolist()]
        weights = torch.zeros(n, k, dtype=activations.dtype, device=activations.device)
        for start in range(0, len(rows), bundle.batch_size):
            images, channels = (
                torch.as_tensor(column) for column in zip(*rows[start : start + bundle.batch_size], strict=False)
            )
            with _ablated_output(bundle, channels):
                scores = target_logits(bundle.model(x[images.to(x.device)]), target[images.to(target.device)])
            weights[images, channels] = _safe_divide(original[images] - scores.to(weights.dtype), original[images])
    return weights[:, :, None, None]


FINER_COMPARISON_RANKS = 3  # pytorch-grad-cam's comparison_categories (1, 2, 3)


def finer_score(logits: torch.Tensor, target: torch.Tensor, comparisons: int, alpha: float) -> torch.Tensor:
    """FinerCAM's score (pytorch-grad-cam 1.5.7's `FinerWeightedTarget`): with the
    `comparisons` classes j whose logits are nearest the target's (ranks 1..n by |z_j - z_c|),
    sum_j p_j (z_c - alpha z_j) / (sum_j p_j + 1e-9), p the softmax (not detached, as the peer)."""
    target_logit = target_logits(logits, target)
    distance = (logits - target_logit[:, None]).abs().detach()
    distance.scatter_(1, target[:, None], -1.0)  # the target itself is rank 0
    n = min(comparisons, logits.shape[1] - 1)
    nearest = distance.argsort(dim=1, stable=True)[:, 1 : 1 + n]
    probabilities = logits.softmax(dim=1).gather(1, nearest)
    numerator = (probabilities * (target_logit[:, None] - alpha * logits.gather(1, nearest))).sum(dim=1)
    return numerator / (probabilities.sum(dim=1) + 1e-9)


def _cam(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return class_activation_map(bundle, x, target, _cam_weights, needs_gradient=False, relu=False)


AUG_SMOOTH = Param(
    "aug_smooth",
    "Augmentation smoothing",
    False,
    help="Average the maps of 6 views (horizontal flip x input times 0.9, 1, 1.1), each scaled to [0, 1], "
    "as pytorch-grad-cam's aug_smooth: 6x the passes.",
)
EIGEN_SMOOTH = Param("eigen_smooth", "Eigen smoothing",
                     False, help="Replace the sum of the weighted feature maps by their first principal component "
                                 "(pytorch-grad-cam's eigen_smooth): less noise, fewer details.")


def max_channels_param(passes: str) -> Param:
    """The cap on per-channel forward passes of Score-CAM and Ablation-CAM."""
    return Param("max_channels", "Channels scored", 256, 1, 4096, 1,
                 help=f"Forward passes per image: the channels of largest {passes} are scored, the rest weigh 0. "
                      "At least the layer's channel count (e.g. 1280 for EfficientNet-Lite0) gives the method exactly.")


def smoothing_cost(passes: Callable[[Mapping[str, Any], int], int]) -> Callable[[Mapping[str, Any], int], int]:
    """A method's planned passes per image, times the 6 views when `aug_smooth` is on."""
    return lambda p, size: passes(p, size) * (len(AUGMENTATIONS) if p.get("aug_smooth", False) else 1)


def register_cam_variant(
    key: str,
    label: str,
    weights_of: WeightFn,
    needs_gradient: bool,
    description: str,
    reference: str,
    centred: bool = False,
    smoothing: tuple[Param, ...] = (AUG_SMOOTH, EIGEN_SMOOTH),
    hessian_corrected: bool = False,
    passes: int = 1,
) -> Method:
    """Register a rectified CAM variant that differs from Grad-CAM only in its weights
    (with ShapleyCAM's G - H A / 2 for gradients when `hessian_corrected`), with the
    `smoothing` parameters pytorch-grad-cam offers for it."""

    def compute(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
        def maps_of(view: torch.Tensor) -> torch.Tensor:
            return class_activation_map(
                bundle,
                view,
                target,
                weights_of,
                needs_gradient,
                centred=centred,
                hessian_corrected=hessian_corrected,
                eigen_smooth=bool(p.get("eigen_smooth", False)),
            )

        return smoothed(maps_of, x, p)

    return register(
        Method(
            key=key,
            label=label,
            compute=compute,
            description=f"{description}; upsampled bilinearly.",
            reference=reference,
            params=smoothing,
            signed=False,
            family="cam",
            requires="cam_layer",
            evals_per_image=smoothing_cost(lambda p, size: passes),
        )
    )


def register_channel_scoring_variant(key: str, label: str, weights_of: Callable[..., torch.Tensor], ranked_by: str,
                                     description: str, reference: str) -> Method:
    """Register a gradient-free CAM variant that scores channels by batched forward passes
    (Score-CAM, Ablation-CAM), capped by `max_channels`."""

    def compute(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
        def weights(*args: Any) -> torch.Tensor:
            return weights_of(*args, max_channels=int(p["max_channels"]))

        def maps_of(view: torch.Tensor) -> torch.Tensor:
            return class_activation_map(bundle, view, target, weights, needs_gradient=False,
                                        eigen_smooth=bool(p.get("eigen_smooth", False)))

        return smoothed(maps_of, x, p)

    return register(
        Method(
            key=key,
            label=label,
            compute=compute,
            description=description,
            reference=reference,
            params=(max_channels_param(ranked_by), AUG_SMOOTH, EIGEN_SMOOTH),
            signed=False,
            family="cam",
            requires="cam_layer",
            evals_per_image=smoothing_cost(lambda p, size: int(p["max_channels"]) + 1),
            batched_internally=True,
        )
    )


def _finercam(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    def score(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return finer_score(logits, classes, int(p["comparisons"]), float(p["alpha"]))

    return class_activation_map(bundle, x, target, _gradcam_weights, needs_gradient=True, score_of=score,
                                eigen_smooth=bool(p["eigen_smooth"]))


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
    smoothing=(AUG_SMOOTH,),
)
register_channel_scoring_variant(
    "scorecam", "Score-CAM", _scorecam_weights, "spatial variance",
    "ReLU of the feature maps weighted by the class probability of the image masked by each upsampled, "
    "[0, 1]-scaled map minus that of the baseline (mean image); one forward pass per scored channel, batched.",
    "Wang et al. 2020, Score-CAM",
)
register_cam_variant(
    "hirescam", "HiResCAM", _hirescam_weights, True,
    "ReLU of sum_k G_kij A_kij: the gradient times the activation element-wise, summed over channels (equals Grad-CAM "
    "when the gradient is spatially constant, e.g. GAP + linear head right after the CAM layer)",
    "Draelos & Carin 2020, Use HiResCAM instead of Grad-CAM for faithful explanations",
)
register_channel_scoring_variant(
    "ablationcam", "Ablation-CAM", _ablationcam_weights, "energy (sum of squares)",
    "ReLU of the feature maps weighted by the relative drop of the class logit when the map is set to 0, "
    "(y_c - y_c^k) / y_c; one forward pass per ablated channel, channels of all images batched.",
    "Desai & Ramaswamy 2020, Ablation-CAM",
)
register_cam_variant(
    "shapleycam",
    "ShapleyCAM",
    _gradcam_weights,
    True,
    "ReLU of the feature maps weighted by the spatial mean of G - H A / 2 (H the Hessian of the logit in A, H A by "
    "double backward): Grad-CAM with the second-order term of a Shapley value; equal to Grad-CAM when nothing after "
    "the layer is curved",
    "Cai et al. 2025, CAMs as Shapley value-based explainers",
    hessian_corrected=True,
    passes=2,
)
register(Method(
    key="finercam",
    label="FinerCAM",
    compute=_finercam,
    description=(
        "Grad-CAM of sum_j p_j (y_c - alpha y_j) / sum_j p_j over the classes j whose logits are nearest the target's "
        "(p the softmax): what sets the class apart from its look-alikes; upsampled bilinearly."
    ),
    reference="Zhang et al. 2025, Finer-CAM: spotting the difference reveals finer details",
    params=(
        Param("comparisons", "Look-alike classes", FINER_COMPARISON_RANKS, 1, 20, 1,
              help="The classes whose logits are nearest the target's that the map is contrasted with "
                   "(pytorch-grad-cam's comparison_categories = ranks 1..n)."),
        Param("alpha", "Contrast strength", 1.0, 0.0, 2.0, 0.05,
              help="0: plain Grad-CAM of the target; 1: the difference to the look-alikes."),
        EIGEN_SMOOTH,
    ),
    signed=False,
    family="cam",
    requires="cam_layer",
))
