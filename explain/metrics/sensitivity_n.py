"""Sensitivity-N (Ancona, Ceolini, Öztireli & Gross, ICLR 2018): a map satisfies
sensitivity-n when, for any set of n pixels, the relevance it puts on them sums to the
change of the output when they are removed. For each of `sizes` set sizes N (log-spaced
from 1 pixel to `max_fraction` of the pixels) and `samples` random sets of N pixels,
the pixels are replaced by a substrate (`substrates.SUBSTRATES`, default `zero`: the
baseline of Integrated Gradients and DeepLIFT) and the explained class's output read
(default its logit, as the paper); per image and N the score is the Pearson correlation,
over the sets, between the map's sum on the set and the output's drop f(x) - f(x_S).
The curve is that correlation against N (log scale); the score its mean over the curve's
trapezoid (higher is better). Closed form: a linear model explained by Gradient x Input
with the zero substrate has correlation 1 at every N (the paper's Proposition; the test
checks it).

The random sets depend only on `seed` and the image size (the same sets for every image
of a run), so an image's curve does not depend on its batch mates. Every (image, set)
input goes through the model in forward-sized chunks built on the device.

Deliberately not Quantus 0.6.0's `SensitivityN`, which computes another quantity under
that name: it removes the features in the order of the map (not random sets), cumulatively,
correlates the output drop with the relevance of the last step's features only, and
correlates *across the images of the batch* at each step (so one number per step for the
batch, none per image). On the paper's closed form it does not give 1
(`tests/test_catalogue_faithfulness_regions.py` shows both).

Why in-house: no library here has Ancona's definition (Captum, Quantus, Zennit do not).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..methods.registry import Param
from .base import Curves, MetricInfo, Skipped
from .perturbation import SCORE_OUTPUT_HELP, SCORE_OUTPUTS, TargetOutputs
from .registry import FAITHFULNESS_PAGE, Metric, MetricInput, register_metric
from .substrates import SUBSTRATE_HELP, SUBSTRATES, make_substrate

SENSITIVITY_N = MetricInfo(
    key="sensitivity_n",
    name="Sensitivity-N",
    higher_is_better=True,
    x_label="pixels removed at random, N (log scale)",
    y_label="correlation of the map's sum with the output's drop",
    description="Pearson correlation, over random sets of N pixels, between the relevance the map puts on a set and "
                "the drop of the explained class's output when the set is removed; mean over N (higher is better).",
    reference="Ancona, Ceolini, Öztireli, Gross. Towards better understanding of gradient-based attribution methods "
              "for deep neural networks. ICLR 2018.",
)
CONSTANT = "the map's sums or the model's output do not vary over the random sets at N = {sizes} (a constant map?)"


def set_sizes(pixels: int, sizes: int, max_fraction: float) -> np.ndarray:
    """`sizes` increasing set sizes, log-spaced from 1 to `max_fraction` of `pixels`
    (fewer when the image has fewer pixels)."""
    top = max(1, min(pixels - 1, int(max_fraction * pixels)))
    out: list[int] = []
    for value in np.geomspace(1, top, sizes):
        size = max(int(round(value)), out[-1] + 1 if out else 1)
        if size > top:
            break
        out.append(size)
    return np.array(out, dtype=np.int64)


def random_sets(pixels: int, sizes: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """(len(sizes) * samples, pixels) bool: `samples` random sets of each size, drawn in
    that order from a generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    sets = np.zeros((len(sizes) * samples, pixels), dtype=bool)
    for row in range(len(sets)):
        sets[row, rng.permutation(pixels)[: sizes[row // samples]]] = True
    return sets


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis (NaN where either does not vary)."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    scale = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, (a * b).sum(axis=-1) / scale, np.nan)


def sensitivity_curves(data: MetricInput, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(set sizes (S,), correlations (N, S)) of every image of the batch."""
    bundle = data.bundle
    x = data.images.to(bundle.device, torch.float32)
    n, _, h, w = x.shape
    samples = int(params["samples"])
    sizes = set_sizes(h * w, int(params["sizes"]), float(params["max_fraction"]))
    sets = random_sets(h * w, sizes, samples, int(params["seed"]))
    relevance = np.asarray(data.maps, dtype=np.float64).reshape(n, -1) @ sets.T.astype(np.float64)  # (N, M)
    masks = torch.as_tensor(sets, device=bundle.device).view(len(sets), 1, h, w)
    fill = make_substrate(x, params["fill"], bundle.mean, bundle.std)
    outputs = TargetOutputs(data, _passes(params, n), params["output"])
    original = outputs.of_images(x)

    def build(jobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, subset = jobs // len(sets), jobs % len(sets)
        return torch.where(masks[subset], fill[image], x[image]), image

    removed = outputs.of_jobs(n * len(sets), build).view(n, len(sets))
    drops = (original[:, None] - removed).numpy()
    shape = (n, len(sizes), samples)
    return sizes, pearson(relevance.reshape(shape), drops.reshape(shape))


def _passes(params: Mapping[str, Any], n: int) -> int:
    return n * (1 + int(params["sizes"]) * int(params["samples"]))


def _compute(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    sizes, correlations = sensitivity_curves(data, params)
    undefined = ~np.isfinite(correlations)
    kept = tuple(int(i) for i in np.flatnonzero(~undefined.any(axis=1)))
    skipped = tuple(Skipped(int(i), CONSTANT.format(sizes=", ".join(str(s) for s in sizes[undefined[i]])))
                    for i in np.flatnonzero(undefined.any(axis=1)))
    x = np.linspace(0.0, 1.0, len(sizes)) if len(sizes) > 1 else np.zeros(1)
    labels = tuple(str(int(s)) for s in sizes)
    return {SENSITIVITY_N.key: Curves(SENSITIVITY_N, data.method.ident, x, correlations[list(kept)], kept=kept,
                                      skipped=skipped, x_labels=labels)}


register_metric(Metric(
    key="sensitivity_n",
    label="Sensitivity-N",
    scores=(SENSITIVITY_N,),
    compute=_compute,
    description="Random sets of N pixels are replaced by a substrate; per N, the correlation over the sets between "
                "the map's sum on a set and the drop of the explained class's output (Ancona et al.'s definition; "
                "Quantus's SensitivityN ranks instead of drawing).",
    params=(
        Param("sizes", "Set sizes N", 6, 2, 16, 1, help="How many N, log-spaced from 1 pixel to the largest share"),
        Param("samples", "Random sets per N", 16, 4, 64, 1,
              help="Sets drawn per N (the correlation's sample size); passes per image = 1 + sizes x samples"),
        Param("max_fraction", "Largest N (share of the pixels)", 0.8, 0.01, 0.95, 0.01,
              help="The largest set as a share of the image's pixels (Quantus's n_max_percentage)"),
        Param("fill", "Removed pixels become", "zero", choices=SUBSTRATES, help=SUBSTRATE_HELP),
        Param("output", "Output", "logit", choices=SCORE_OUTPUTS, help=SCORE_OUTPUT_HELP),
        Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Seeds the random sets of pixels"),
    ),
    passes=_passes,
    page=FAITHFULNESS_PAGE,
))
