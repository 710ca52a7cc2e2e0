"""Gradient methods: plain input gradients and the SmoothGrad family built on them.

SmoothGrad, SmoothGrad-squared and VarGrad are one wrapper over the input gradient
(like Captum's NoiseTunnel): n noisy copies x + N(0, sigma^2), sigma = noise_level *
(max(x) - min(x)) per image, and the mean / mean of squares / variance of the
gradients over the copies. Noise is drawn from a seeded generator, so the same
settings give the same map (and the cache may return it).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..models.bundle import ModelBundle
from .registry import Method, Param, register


def input_gradients(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d logit[target] / d x for every image of the batch, (N, C, H, W)."""
    x = x.detach().clone().requires_grad_(True)
    logits = bundle.model(x)
    selected = logits.gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(selected, x)
    return grad


def noisy_gradient_moments(
    bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, n_samples: int, noise_level: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and mean of squares of the input gradient over `n_samples` noisy copies of
    each image, evaluated `bundle.batch_size` rows at a time."""
    n = x.shape[0]
    sigma = noise_level * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    sigma = sigma.view(n, 1, 1, 1)
    generator = torch.Generator(device=x.device).manual_seed(int(seed))
    copies_per_pass = max(1, bundle.batch_size // n)
    total = torch.zeros_like(x)
    total_sq = torch.zeros_like(x)
    done = 0
    while done < n_samples:
        k = min(copies_per_pass, n_samples - done)
        noise = torch.randn((k, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
        noisy = (x.unsqueeze(0) + sigma.unsqueeze(0) * noise).flatten(0, 1)
        grads = input_gradients(bundle, noisy, target.repeat(k)).view(k, *x.shape)
        total += grads.sum(0)
        total_sq += grads.pow(2).sum(0)
        done += k
    return total / n_samples, total_sq / n_samples


NOISE_PARAMS = (
    Param("n_samples", "Noisy samples", 16, 1, 256, 1, help="Noisy copies per image; more is smoother and slower."),
    Param("noise_level", "Noise level (fraction of input range)", 0.15, 0.0, 1.0, 0.01,
          help="sigma = noise level x (max - min) of the image, as in SmoothGrad."),
    Param("seed", "Random seed", 0, 0, 2**31 - 1, 1),
)


def _smoothgrad(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    mean, _ = noisy_gradient_moments(bundle, x, target, p["n_samples"], p["noise_level"], p["seed"])
    return mean


def _smoothgrad_sq(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    _, mean_sq = noisy_gradient_moments(bundle, x, target, p["n_samples"], p["noise_level"], p["seed"])
    return mean_sq


def _vargrad(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    mean, mean_sq = noisy_gradient_moments(bundle, x, target, p["n_samples"], p["noise_level"], p["seed"])
    return (mean_sq - mean.pow(2)).clamp_min(0)


def _noise_evals(p: Mapping[str, Any], size: int) -> int:
    return int(p["n_samples"])


register(Method(
    key="smoothgrad",
    label="SmoothGrad",
    compute=_smoothgrad,
    description="Mean input gradient over noisy copies of the image, summed over channels.",
    reference="Smilkov et al. 2017, SmoothGrad: removing noise by adding noise",
    params=NOISE_PARAMS,
    evals_per_image=_noise_evals,
    batched_internally=True,
))
register(Method(
    key="smoothgrad_sq",
    label="SmoothGrad-squared",
    compute=_smoothgrad_sq,
    description="Mean squared input gradient over noisy copies, summed over channels.",
    reference="Hooker et al. 2019, A Benchmark for Interpretability Methods in Deep Neural Networks",
    params=NOISE_PARAMS,
    signed=False,
    evals_per_image=_noise_evals,
    batched_internally=True,
))
register(
    Method(
        key="vargrad",
        label="VarGrad",
        compute=_vargrad,
        description="Variance of the input gradient over noisy copies, summed over channels.",
        reference="Adebayo et al. 2018, Local explanation methods for deep neural networks lack sensitivity to "
                  "parameter values",
        params=NOISE_PARAMS,
        signed=False,
        evals_per_image=_noise_evals,
        batched_internally=True,
    )
)
