"""Methods computed by Captum, registered under the common signature.

Baselines (Integrated Gradients, DeepLIFT, Occlusion) are the all-zero tensor in the
normalised input space, i.e. the dataset-mean image. GradientSHAP draws its baselines
from {black, mean, white} images. All maps are summed over colour channels.
"""

from __future__ import annotations

import math
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from captum import attr as captum_attr

from ..models.bundle import ModelBundle
from .registry import Method, Param, register

# Captum announces every hook it sets and removes; they are removed in its own `finally`.
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU", module="captum")
warnings.filterwarnings("ignore", message="Setting forward, backward hooks", category=UserWarning)


def _saliency(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return captum_attr.Saliency(bundle.model).attribute(x, target=target, abs=True)


def _input_x_gradient(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return captum_attr.InputXGradient(bundle.model).attribute(x, target=target)


def integrated_gradients(
    bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, baselines: torch.Tensor, n_steps: int, integration: str
) -> torch.Tensor:
    """Captum's Integrated Gradients from `baselines` to `x`, (N, C, H, W), the path's
    points evaluated `bundle.batch_size` at a time."""
    return captum_attr.IntegratedGradients(bundle.model).attribute(
        x,
        baselines=baselines,
        target=target,
        n_steps=n_steps,
        method=integration,
        internal_batch_size=bundle.batch_size,
    )


def _integrated_gradients(
    bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]
) -> torch.Tensor:
    return integrated_gradients(bundle, x, target, torch.zeros_like(x), p["n_steps"], p["integration"])


def _guided_backprop(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return captum_attr.GuidedBackprop(bundle.model).attribute(x, target=target)


def _guided_gradcam(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    layer = bundle.cam_module()
    return captum_attr.GuidedGradCam(bundle.model, layer).attribute(x, target=target, interpolate_mode="bilinear")


def _deeplift(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return captum_attr.DeepLift(bundle.model).attribute(x, baselines=torch.zeros_like(x), target=target)


def _occlusion(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    window, stride = int(p["window"]), int(p["stride"])
    channels = x.shape[1]
    return captum_attr.Occlusion(bundle.model).attribute(
        x, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride),
        baselines=0.0, target=target, perturbations_per_eval=max(1, bundle.batch_size // x.shape[0]),
    )


def _occlusion_evals(p: Mapping[str, Any], size: int) -> int:
    """One pass for the unoccluded image plus one per window position."""
    return 1 + (math.ceil(max(size - p["window"], 0) / p["stride"]) + 1) ** 2


def reference_images(bundle: ModelBundle, like: torch.Tensor) -> torch.Tensor:
    """Black, mean and white images in the normalised space: GradientSHAP's baselines."""
    mean = torch.tensor(bundle.mean, device=like.device).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std, device=like.device).view(1, -1, 1, 1)
    shape = (1, *like.shape[1:])
    black = ((torch.zeros(shape, device=like.device) - mean) / std)
    white = ((torch.ones(shape, device=like.device) - mean) / std)
    return torch.cat([black, torch.zeros(shape, device=like.device), white]).to(like.dtype)


# Captum's GradientShap and shap's GradientExplainer draw from the process-wide NumPy and
# torch generators and take no generator of their own: one lock for every seeded use of
# them, so two sessions (or two models) never reseed each other's draws half-way.
# Everything else draws from local generators (`torch.Generator`, `np.random.default_rng`).
GLOBAL_RNG_LOCK = threading.RLock()


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed NumPy's and torch's global generators (Captum and shap draw from both) under
    `GLOBAL_RNG_LOCK`, and restore them afterwards."""
    devices = [device] if device.type == "cuda" else []
    with GLOBAL_RNG_LOCK:
        numpy_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                np.random.seed(seed)
                yield
        finally:
            np.random.set_state(numpy_state)


def _gradient_shap(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    """Captum's GradientShap, one image per call with the seed reset for each, so an
    image's map does not depend on which other images share its batch (Captum draws
    baselines with NumPy's and interpolation points with torch's global generators)."""
    explainer = captum_attr.GradientShap(bundle.model)
    baselines = reference_images(bundle, x)
    maps = []
    for xi, ti in zip(x.split(1), target.split(1), strict=True):
        with seeded(int(p["seed"]), x.device):
            maps.append(explainer.attribute(
                xi, baselines=baselines, n_samples=int(p["n_samples"]), stdevs=float(p["stdev"]), target=ti,
            ))
    return torch.cat(maps)


register(Method(
    key="saliency",
    label="Saliency",
    compute=_saliency,
    description="Absolute input gradient of the class logit, summed over channels: sum_c |df/dx_c|.",
    reference="Simonyan et al. 2014, Deep Inside Convolutional Networks",
    signed=False,
))
register(Method(
    key="input_x_gradient",
    label="Input x Gradient",
    compute=_input_x_gradient,
    description="Input times its gradient, summed over channels.",
    reference="Shrikumar et al. 2016, Not Just a Black Box",
))
register(
    Method(
        key="integrated_gradients",
        label="Integrated Gradients",
        compute=_integrated_gradients,
        description="Path integral of gradients from the mean image (zero after normalisation) to the input; sums to "
                    "f(x) - f(baseline).",
        reference="Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks",
        params=(
            Param("n_steps", "Integration steps", 32, 2, 512, 1),
            Param("integration", "Integration rule", "gausslegendre", choices=("gausslegendre", "riemann_middle")),
        ),
        evals_per_image=lambda p, size: int(p["n_steps"]),
        batched_internally=True,
    )
)
register(Method(
    key="guided_backprop",
    label="Guided Backprop",
    compute=_guided_backprop,
    description="Gradient with negative gradients zeroed at every ReLU, summed over channels.",
    reference="Springenberg et al. 2015, Striving for Simplicity",
    sees_rectifiers=True,
))
def _token_layer(bundle: ModelBundle) -> str | None:
    if bundle.cam_reshape is None:
        return None
    return (
        f"Captum's Guided Grad-CAM needs convolutional feature maps; {bundle.name}'s CAM layer gives transformer "
        "tokens "
        f"(the in-house CAM methods reshape them)."
    )


register(Method(
    key="guided_gradcam",
    label="Guided Grad-CAM",
    compute=_guided_gradcam,
    description="Guided Backprop times the upsampled Grad-CAM map, summed over channels.",
    reference="Selvaraju et al. 2017, Grad-CAM",
    family="cam",
    requires="cam_layer",
    sees_rectifiers=True,
    unavailable_when=_token_layer,
))
register(Method(
    key="deeplift",
    label="DeepLIFT",
    compute=_deeplift,
    description="DeepLIFT rescale rule against the mean image (zero after normalisation), summed over channels.",
    reference="Shrikumar et al. 2017, Learning Important Features Through Propagating Activation Differences",
    sees_rectifiers=True,
))
register(
    Method(
        key="occlusion",
        label="Occlusion",
        compute=_occlusion,
        description="Drop in the class logit when a square window is set to the mean image, averaged over the windows "
                    "covering each pixel.",
        reference="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
        params=(
            Param("window", "Window size (pixels)", 32, 4, 224, 4),
            Param("stride", "Stride (pixels)", 16, 2, 224, 2),
        ),
        family="perturbation",
        evals_per_image=_occlusion_evals,
        batched_internally=True,
    )
)
register(
    Method(
        key="gradient_shap",
        label="GradientSHAP",
        compute=_gradient_shap,
        description="Expected gradients: input-minus-baseline times gradients at random points between noisy input "
                    "and black/mean/white baselines.",
        reference="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
        params=(
            Param("n_samples", "Samples", 16, 1, 256, 1),
            Param("stdev", "Input noise (std, normalised units)", 0.09, 0.0, 1.0, 0.01),
            Param("seed", "Random seed", 0, 0, 2**31 - 1, 1),
        ),
        evals_per_image=lambda p, size: int(p["n_samples"]),
        batched_internally=True,
    )
)
