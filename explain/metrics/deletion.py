"""Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018).

Pixels are ranked by attribution value, highest first (signed values, as RISE does;
ties keep raster order). Deletion replaces the top-ranked pixels of the image with a
substrate step by step; insertion starts from a blurred copy and puts the original
pixels back in the same order. The curve is the softmax probability of the explained
class against the fraction of pixels changed, its score the trapezoid area over [0, 1].

Every perturbed image of every step, image and method is built on the fly, chunk by
chunk of `bundle.batch_size`, on the model's device, from one rank map per image and
method: building a chunk is a single `torch.where`, so the cost is that of the
forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from ..methods.registry import resolve_targets
from ..models.bundle import ModelBundle
from .base import CurveSet, MetricInfo, trapezoid_auc

ProgressFn = Callable[[int, int], None]

SUBSTRATES = ("zero", "blur", "mean")
DEFAULT_STEPS = 32
BLUR_KERNEL = 11  # RISE's Gaussian: 11x11 kernel, sigma 5
BLUR_SIGMA = 5.0

DELETION = MetricInfo(
    key="deletion",
    name="Deletion AUC",
    higher_is_better=False,
    x_label="fraction of pixels removed",
    y_label="probability of the explained class",
    description="Most relevant pixels first replaced by the substrate; a faithful map makes the probability drop fast.",
    reference="Petsiuk, Das, Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. BMVC 2018.",
)
INSERTION = MetricInfo(
    key="insertion",
    name="Insertion AUC",
    higher_is_better=True,
    x_label="fraction of pixels inserted",
    y_label="probability of the explained class",
    description="Most relevant pixels first put back into a blurred image; a faithful map makes the probability rise fast.",
    reference=DELETION.reference,
)


@dataclass(frozen=True, eq=False)
class DeletionInsertionResult:
    """Curves per method (keys as in the `maps` given), with the settings that made them."""

    deletion: dict[str, CurveSet]
    insertion: dict[str, CurveSet]
    targets: np.ndarray
    substrate: str
    steps: int

    @property
    def methods(self) -> list[str]:
        return list(self.deletion)


def blur(images: torch.Tensor) -> torch.Tensor:
    """RISE's blurred image: Gaussian, 11 px kernel, sigma 5, reflected borders."""
    return TF.gaussian_blur(images, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])


def make_substrate(images: torch.Tensor, substrate: str) -> torch.Tensor:
    """What deleted pixels become: "zero" (0 after normalisation, i.e. the normalisation
    mean colour), "blur" (the blurred image) or "mean" (each image's per-channel mean)."""
    if substrate == "zero":
        return torch.zeros_like(images)
    if substrate == "blur":
        return blur(images)
    if substrate == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).contiguous()
    raise ValueError(f"unknown substrate {substrate!r}; choose one of {SUBSTRATES}")


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps -> (N, H*W) rank of each pixel, 0 = highest value (ties: raster order)."""
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def step_counts(num_pixels: int, steps: int) -> np.ndarray:
    """Pixels changed after each of the `steps` steps, 0 .. num_pixels (steps + 1 values)."""
    k = np.arange(steps + 1, dtype=np.int64)
    return (k * num_pixels + steps // 2) // steps


def deletion_insertion(
    bundle: ModelBundle,
    images: torch.Tensor,
    maps: Mapping[str, np.ndarray],
    target: int | Sequence[int] | None = None,
    *,
    substrate: str = "zero",
    steps: int = DEFAULT_STEPS,
    progress: ProgressFn | None = None,
) -> DeletionInsertionResult:
    """Deletion and insertion curves for a normalised batch `images` (N, C, H, W) and,
    per method, its maps (N, H, W). `target` as in `explain.attribute` (None: top-1).
    `progress(done, total)` counts forward passes."""
    if images.dim() != 4:
        raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(images.shape)}")
    if substrate not in SUBSTRATES:
        raise ValueError(f"unknown substrate {substrate!r}; choose one of {SUBSTRATES}")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    n, _, h, w = images.shape
    for key, m in maps.items():
        if tuple(np.shape(m)) != (n, h, w):
            raise ValueError(f"maps of {key!r} have shape {tuple(np.shape(m))}, expected {(n, h, w)}")
    targets = resolve_targets(bundle, images, target)
    method_keys = list(maps)
    device = bundle.device

    x = images.to(device, torch.float32)
    # Per kind (0 = deletion, 1 = insertion): the image pixels start from, and what ranked pixels become.
    starts = torch.stack([x, blur(x)])
    fills = torch.stack([make_substrate(x, substrate), x])
    ranks = torch.stack([pixel_ranks(torch.tensor(np.asarray(maps[k], dtype=np.float32), device=device)) for k in method_keys]) \
        if method_keys else torch.empty(0, n, h * w, dtype=torch.long, device=device)
    counts = torch.as_tensor(step_counts(h * w, steps), device=device)

    # One job per (kind, method, image, step), in that order, so results reshape directly.
    num_points = steps + 1
    total = 2 * len(method_keys) * n * num_points
    probs = torch.empty(total)
    target_dev = targets.to(device)
    done = 0
    with torch.inference_mode(), bundle.lock:
        for start in range(0, total, bundle.batch_size):
            job = torch.arange(start, min(start + bundle.batch_size, total), device=device)
            step = job % num_points
            image = (job // num_points) % n
            method = (job // (num_points * n)) % max(len(method_keys), 1)
            kind = job // (num_points * n * max(len(method_keys), 1))
            changed = (ranks[method, image] < counts[step, None]).view(-1, 1, h, w)
            batch = torch.where(changed, fills[kind, image], starts[kind, image])
            logits = bundle.model(batch).float()
            probs[start : start + len(job)] = logits.softmax(dim=1).gather(1, target_dev[image, None])[:, 0].cpu()
            done += len(job)
            if progress is not None:
                progress(done, total)

    curves = probs.numpy().astype(np.float64).reshape(2, len(method_keys), n, num_points)
    fractions = step_counts(h * w, steps) / (h * w)
    result: dict[str, dict[str, CurveSet]] = {"deletion": {}, "insertion": {}}
    for kind, info in enumerate((DELETION, INSERTION)):
        for j, key in enumerate(method_keys):
            y = curves[kind, j]
            result[info.key][key] = CurveSet(info, key, fractions, y, trapezoid_auc(y, fractions))
    return DeletionInsertionResult(
        deletion=result["deletion"], insertion=result["insertion"], targets=targets.numpy(), substrate=substrate, steps=steps,
    )
