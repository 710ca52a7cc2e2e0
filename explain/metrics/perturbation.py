"""What the perturbation metrics of the faithfulness catalogue share (ROAD, faithfulness
correlation and estimate, monotonicity and monotonicity correlation, region perturbation,
selectivity, sufficiency, sensitivity-N): pixel orders read
off the maps, the model's output for the explained class over many perturbed images
(built job by job, a chunk of `batching.forward_batch_size` per model call, under
inference mode and the bundle's lock, counted into the progress), the row-wise
correlations Quantus takes, and one value per image as `Curves`.

A feature is a pixel (all its channels): the maps are per pixel. Quantus broadcasts a
per-pixel map over the channels and perturbs channel values one by one; the two agree
wherever Quantus's step is whole pixels (its `features_in_step` = C x ours) or the
images have one channel.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.stats import rankdata

from .base import Curves, MetricInfo, Skipped
from .batching import forward_batch_size
from .registry import MetricInput

SCORE_OUTPUTS = ("probability", "logit")
SCORE_OUTPUT_HELP = "probability: the explained class's softmax probability; logit: its logit (before the softmax)"
OUTPUTS = (*SCORE_OUTPUTS, "top1")
Build = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # job ids -> (images, image index of each)


def pixel_order(maps: np.ndarray, *, descending: bool, absolute: bool) -> np.ndarray:
    """(N, H, W) maps -> (N, H*W) pixel indices, most (`descending`) or least relevant
    first; ties keep raster order."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    if absolute:
        flat = np.abs(flat)
    return np.argsort(-flat if descending else flat, axis=1, kind="stable")


def ranks_of(order: np.ndarray) -> np.ndarray:
    """(N, P) pixel order -> (N, P) each pixel's place in it."""
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :].repeat(len(order), 0), axis=1)
    return ranks


def group_bounds(pixels: int, steps: int) -> np.ndarray:
    """Boundaries (steps + 1 ranks) of `steps` groups of consecutive pixels, as equal as
    whole pixels allow (k * P / steps rounded: Quantus's `features_in_step` groups when
    `steps` divides P); at most one group per pixel."""
    steps = max(1, min(steps, pixels))
    k = np.arange(steps + 1, dtype=np.int64)
    return (k * pixels + steps // 2) // steps


class TargetOutputs:
    """The model's output for the explained class of many perturbed copies of `data`'s
    images, a chunk of `forward_batch_size` inputs per call, each under inference mode and
    the bundle's (fair) lock, so a waiting visitor gets the model between two chunks; every
    pass counted into `data.progress` against `total` (the passes the metric declared).

    `output`: the explained class's softmax probability, its logit, or 1.0 where it is
    still the top class ("top1"); each call may name another."""

    def __init__(self, data: MetricInput, total: int, output: str = "probability") -> None:
        self.output = _checked(output)
        self.bundle = data.bundle
        self.progress = data.progress
        self.total = total
        self.done = 0
        self.device = data.bundle.device
        self.x = data.images.to(self.device, torch.float32)
        self.targets = data.targets.to(self.device, torch.long)
        self.batch_size = forward_batch_size(data.bundle, tuple(self.x.shape[1:]))

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, classes) the model's logits of inputs on its device, one pass counted per input."""
        with torch.inference_mode(), self.bundle.lock:
            logits = self.bundle.model(inputs).float()
        self.done += len(inputs)
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))
        return logits

    def of(self, inputs: torch.Tensor, rows: torch.Tensor, output: str | None = None) -> torch.Tensor:
        """(B,) float64 on the CPU: the output of each input for the target of image `rows`."""
        output = self.output if output is None else _checked(output)
        logits = self.logits(inputs)
        target = self.targets[rows]
        if output == "top1":
            return (logits.argmax(dim=1) == target).double().cpu()
        scores = logits.softmax(dim=1) if output == "probability" else logits
        return scores.gather(1, target[:, None])[:, 0].double().cpu()

    def of_images(self, images: torch.Tensor | None = None, output: str | None = None) -> torch.Tensor:
        """(N,) the output of each image of a batch (`data`'s images unless given)."""
        images = self.x if images is None else images
        return self.of_jobs(len(images), lambda jobs: (images[jobs], jobs), output)

    def of_jobs(self, count: int, build: Build, output: str | None = None) -> torch.Tensor:
        """(count,) float64 on the CPU: the output of every job 0 .. count - 1, in order,
        `build(jobs)` making each chunk's inputs and the image row of each."""
        out = torch.empty(count, dtype=torch.float64)
        for start in range(0, count, self.batch_size):
            jobs = torch.arange(start, min(start + self.batch_size, count), device=self.device)
            with torch.inference_mode():
                inputs, rows = build(jobs)
            out[start : start + len(jobs)] = self.of(inputs, rows, output)
        return out


def _checked(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {OUTPUTS}")
    return output


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of `a` with the same row of `b` (N, K) -> (N,);
    NaN where a row is constant (undefined), as `scipy.stats.pearsonr`."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation row by row (average ranks for ties), (N, K) -> (N,)."""
    return pearson_rows(rankdata(a, axis=1), rankdata(b, axis=1))


def value_curves(info: MetricInfo, method: str, values: np.ndarray, reason: str) -> Curves:
    """One value per image as `Curves`; images whose value is not finite are skipped
    with `reason`."""
    finite = np.isfinite(values)
    kept = tuple(int(i) for i in np.flatnonzero(finite))
    skipped = tuple(Skipped(int(i), reason) for i in np.flatnonzero(~finite))
    curves = values[list(kept)][:, None] if kept else np.zeros((0, 1))
    return Curves(info, method, np.zeros(1), curves, kept=kept, skipped=skipped)
