"""Robustness of a map: Captum's `infidelity` and `sensitivity_max` (Yeh et al., NeurIPS
2019, "On the (in)fidelity and sensitivity of explanations"), called as they are, with
the perturbations drawn from seeded generators of our own.

- Infidelity: E_I[(I . map - (f(x) - f(x - I)))^2], f the explained class's logit, over
  `infidelity_samples` Gaussian perturbations I ~ N(0, sigma^2) with
  sigma = `infidelity_noise` x (max - min) of the image (normalised units, as
  SmoothGrad's noise). Maps are per pixel (channels summed), so I is drawn per pixel
  and shared by the channels; the map is handed to Captum spread evenly over the
  channels (map / C on each), so Captum's sum over channels of I_c * map_c is exactly
  the pixel sum of I * map. With `normalize` (default) Captum first rescales the map
  by the least-squares factor beta, so methods whose maps live on different scales
  (Grad-CAM's, Integrated Gradients') are comparable; Gaussian perturbations judge a
  map as a local linear model of f (gradient-like maps); maps that multiply by the
  input (Input x Gradient, Integrated Gradients, DeepLIFT) are held to the same
  yardstick, which Yeh et al. pair with baseline perturbations instead.
- Max-sensitivity: max over `sensitivity_samples` perturbed inputs x + d, d uniform in
  the L-infinity ball of radius `sensitivity_radius` x (max - min) of the image (per
  value, as Captum's default perturbation), of ||map(x + d) - map(x)|| / ||map(x)||
  (Frobenius), each map recomputed by the method for the same class.

Both lower is better; one value per image. Costs: infidelity one forward pass per
perturbation, sensitivity one map of the method per perturbation.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from captum.metrics import infidelity, sensitivity_max

from ..methods.registry import Param, attribute, get_method
from .base import Curves, MetricInfo
from .randomisation import SANITY_PAGE
from .registry import Metric, MetricInput, register_metric

YEH = "Yeh, Hsieh, Suggala, Inouye, Ravikumar. On the (in)fidelity and sensitivity of explanations. NeurIPS 2019."

INFIDELITY = MetricInfo(
    key="infidelity",
    name="Infidelity",
    higher_is_better=False,
    x_label="",
    y_label="infidelity (squared logit units)",
    description="Expected squared error between the map's dot product with a Gaussian input perturbation and the "
                "change of the class logit it causes (captum.metrics.infidelity); lower is better.",
    reference=YEH,
    score="mean_value",
)
SENSITIVITY = MetricInfo(
    key="sensitivity_max",
    name="Max-sensitivity",
    higher_is_better=False,
    x_label="",
    y_label="max relative change of the map",
    description="Largest relative change of the map (Frobenius norm) over small uniform perturbations of the input "
                "(captum.metrics.sensitivity_max); lower is better.",
    reference=YEH,
    score="mean_value",
)


def _ranges(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 1, 1): each image's max - min."""
    flat = x.flatten(1)
    return (flat.max(dim=1).values - flat.min(dim=1).values).view(-1, 1, 1, 1)


def gaussian_pixel_noise(fraction: float, seed: int) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Captum perturb_func: (I, x - I) with I ~ N(0, (fraction x range)^2) per pixel,
    shared by the channels; draws from its own generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = inputs.shape
        noise = torch.randn((n, 1, h, w), generator=generator).to(inputs.device, inputs.dtype)
        noise = (noise * fraction * _ranges(inputs)).expand(n, c, h, w)
        return noise, inputs - noise

    return perturb


def uniform_ball(fraction: float, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Captum perturb_func: x + d, d uniform in [-r, r] per value with r = fraction x
    range (Captum's `default_perturb_func`, from a seeded generator of its own)."""
    generator = torch.Generator().manual_seed(seed)

    def perturb(inputs: torch.Tensor) -> torch.Tensor:
        d = torch.rand(inputs.shape, generator=generator).to(inputs.device, inputs.dtype) * 2 - 1
        return inputs + d * fraction * _ranges(inputs)

    return perturb


def spread_over_channels(maps: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps as (N, C, H, W) attributions that sum back to them over channels."""
    m = torch.as_tensor(np.asarray(maps), dtype=like.dtype, device=like.device)
    return (m[:, None] / like.shape[1]).expand_as(like).contiguous()


def perturbed_batch(batch_size: int, n: int, samples: int) -> int:
    """Captum's `max_examples_per_batch`: about a device batch, within the [n, n x samples] it accepts."""
    return min(n * samples, max(batch_size, n))


def map_infidelity(data: MetricInput, params: Mapping[str, Any]) -> np.ndarray:
    """Captum's infidelity of each image's map, (N,)."""
    bundle = data.bundle
    x = data.images.to(bundle.device, torch.float32)
    samples = int(params["infidelity_samples"])
    with bundle.lock:
        values = infidelity(
            bundle.model, gaussian_pixel_noise(float(params["infidelity_noise"]), int(params["seed"])), x,
            spread_over_channels(data.maps, x), target=data.targets.to(bundle.device),
            n_perturb_samples=samples, max_examples_per_batch=perturbed_batch(bundle.batch_size, x.shape[0], samples),
            normalize=bool(params["normalize"]),
        )
    return values.detach().cpu().double().numpy()


def method_explainer(
    data: MetricInput, on_maps: Callable[[int], None] = lambda count: None
) -> Callable[..., torch.Tensor | tuple[torch.Tensor]]:
    """The method as Captum's `explanation_func`: (inputs, target=...) -> (N, H, W) maps;
    `on_maps(count)` after each call (progress)."""
    spec = data.method

    def explain(inputs: torch.Tensor | tuple[torch.Tensor], target: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor]:
        x = inputs[0] if isinstance(inputs, tuple) else inputs  # Captum passes the unperturbed inputs as a tuple
        with torch.enable_grad():  # sensitivity_max calls it under no_grad
            maps = attribute(data.bundle, x.detach(), spec.key, torch.as_tensor(target).tolist(), **spec.resolved)
        on_maps(len(maps))
        out = torch.from_numpy(maps).to(x.device)
        return (out,) if isinstance(inputs, tuple) else out  # the same structure as the inputs, as Captum's methods

    return explain


def map_sensitivity(
    data: MetricInput, params: Mapping[str, Any], on_maps: Callable[[int], None] = lambda count: None
) -> np.ndarray:
    """Captum's max-sensitivity of each image's map, (N,); the maps of x itself are
    recomputed by Captum through the method (as its definition asks)."""
    x = data.images.to(data.bundle.device, torch.float32)
    samples = int(params["sensitivity_samples"])
    values = sensitivity_max(
        method_explainer(data, on_maps),
        x,
        perturb_func=uniform_ball(float(params["sensitivity_radius"]), int(params["seed"])),
        n_perturb_samples=samples,
        max_examples_per_batch=x.shape[0] * samples,
        target=data.targets.to(data.bundle.device),
    )
    return values.detach().cpu().double().numpy()


def robustness_values(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    get_method(data.method.key)  # sensitivity recomputes maps with the method
    n = data.images.shape[0]
    per_map = data.passes_per_map
    forward = n * int(params["infidelity_samples"])
    total = forward + n * (int(params["sensitivity_samples"]) + 1) * per_map
    done = [0]

    def progress(units: int) -> None:
        done[0] += units
        if data.progress is not None:
            data.progress(done[0], total)

    infid = map_infidelity(data, params)
    progress(forward)
    sens = map_sensitivity(data, params, lambda count: progress(count * per_map))
    ident = data.method.ident
    return {INFIDELITY.key: Curves(INFIDELITY, ident, np.zeros(1), infid[:, None]),
            SENSITIVITY.key: Curves(SENSITIVITY, ident, np.zeros(1), sens[:, None])}


register_metric(
    Metric(
        key="robustness",
        label="Robustness",
        scores=(INFIDELITY, SENSITIVITY),
        compute=robustness_values,
        description="Captum's infidelity (Gaussian input perturbations against the map's prediction of the logit "
                    "change) "
        "and max-sensitivity (largest relative change of the map over small uniform input perturbations).",
        params=(
            Param(
                "infidelity_noise",
                "Infidelity noise (fraction of the range)",
                0.1,
                0.001,
                1.0,
                0.01,
                help="Std of the per-pixel Gaussian perturbation, as a fraction of the image's max - min",
            ),
            Param("infidelity_samples", "Infidelity perturbations", 32, 1, 1024, 1, help="Forward passes per image"),
            Param(
                "normalize",
                "Rescale maps (least squares)",
                True,
                help="Captum's normalize: infidelity then ignores the map's scale",
            ),
            Param(
                "sensitivity_radius",
                "Sensitivity radius (fraction of the range)",
                0.02,
                0.0,
                1.0,
                0.005,
                help="Half-width of the uniform perturbation, as a fraction of the image's max - min",
            ),
            Param(
                "sensitivity_samples", "Sensitivity perturbations", 5, 1, 200, 1, help="Maps of the method per image"
            ),
            Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Seeds both perturbation draws"),
        ),
        passes=lambda params, n: n * int(params["infidelity_samples"]),
        maps_per_image=lambda params: int(params["sensitivity_samples"]) + 1,
        page=SANITY_PAGE,
    )
)
