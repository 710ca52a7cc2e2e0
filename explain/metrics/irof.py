"""IROF: Iterative Removal Of Features (Rieger & Hansen, 2020).

The image is over-segmented into superpixels (SLIC on the picture the model sees);
superpixels are ranked by their mean attribution, most relevant first, and removed one
after another (replaced by a substrate: the image's per-channel mean by default, or any
of `substrates.ALL_SUBSTRATES`, noisy linear imputation included). After each removal
the model's probability of the explained class is read. The curve is the fraction of
that probability lost, 1 - p_k / p_0, against the fraction of superpixels removed; the
score is its area, i.e. the area over the normalised probability curve (Quantus's IROF
"AOC", divided by the number of steps). Higher is better: a faithful map points at the
superpixels whose removal costs the class its probability first.

Quantus's IROF is cumulative too (its `irof.py` accumulates the removed superpixels
since v0.3.2), and the two agree on the same segments and fill. Why in-house anyway:
the definition is a dozen lines over `skimage.segmentation.slic`, Quantus evaluates the
steps of one image one pass at a time, while this batches every removal step of an
image through the model in one call.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from skimage.segmentation import slic

from ..methods.registry import Param
from .base import Curves, MetricInfo
from .registry import Metric, MetricInput, register_metric
from .substrates import (ALL_SUBSTRATE_HELP, ALL_SUBSTRATES, LINEAR, LINEAR_NOISE, NOISE_SEED, make_substrate,
                         remove_pixels)

GRID_POINTS = 101
FILLS = ALL_SUBSTRATES

IROF = MetricInfo(
    key="irof",
    name="IROF",
    higher_is_better=True,
    x_label="fraction of superpixels removed (most relevant first)",
    y_label="fraction of the class probability lost",
    description="Superpixels removed most relevant first; a faithful map makes the class lose its probability early.",
    reference="Rieger, Hansen. IROF: a low resource evaluation metric for explanation methods. ICLR 2020 workshop "
              "(arXiv:2003.08747).",
)


def superpixels(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC labels 0..K-1 of a uint8 (H, W, 3) picture."""
    labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(labels.shape)


def irof_curve(data: MetricInput, index: int, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(fraction of superpixels removed, fraction of probability lost) at every step of
    image `index`, from 0 to all superpixels removed."""
    bundle = data.bundle
    x = data.images[index : index + 1].float()
    picture = bundle.to_display(x)[0]
    labels = superpixels(picture, int(params["n_segments"]), float(params["compactness"]))
    count = int(labels.max()) + 1
    attribution = np.asarray(data.maps[index], dtype=np.float64)
    means = np.bincount(labels.ravel(), weights=attribution.ravel(), minlength=count) / np.bincount(
        labels.ravel(), minlength=count
    )
    order = np.argsort(-means, kind="stable")
    rank = np.empty(count, dtype=np.int64)
    rank[order] = np.arange(count)
    pixel_rank = torch.from_numpy(rank[labels]).to(x.device)  # (H, W): the step at which each pixel goes
    steps = torch.arange(count + 1, device=x.device).view(-1, 1, 1, 1)
    removed = (pixel_rank.view(1, 1, *pixel_rank.shape) < steps)  # (K+1, 1, H, W)
    if params["fill"] == LINEAR:  # imputed from what is left at each step
        batch = remove_pixels(x.expand(count + 1, -1, -1, -1), removed[:, 0], LINEAR, noise=LINEAR_NOISE,
                              rng=np.random.RandomState(NOISE_SEED))
    else:
        batch = torch.where(removed, make_substrate(x, params["fill"], bundle.mean, bundle.std), x)
    probs = bundle.probabilities(batch)[:, int(data.targets[index])].double().numpy()
    lost = 1.0 - probs / probs[0] if probs[0] > 0 else np.zeros_like(probs)
    return np.arange(count + 1) / count, lost


def _compute(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    curves = []
    n = data.images.shape[0]
    for i in range(n):
        fractions, lost = irof_curve(data, i, params)
        curves.append(np.interp(grid, fractions, lost))
        if data.progress is not None:
            data.progress((i + 1) * (int(params["n_segments"]) + 1), n * (int(params["n_segments"]) + 1))
    return {IROF.key: Curves(IROF, data.method.ident, grid, np.array(curves))}


register_metric(Metric(
    key="irof",
    label="IROF",
    scores=(IROF,),
    compute=_compute,
    description="The image is cut into superpixels (SLIC), which are removed most relevant first (mean attribution) "
                "and replaced by a substrate (default: the image's mean colour); y = fraction of the explained "
                "class's probability lost.",
    params=(
        Param("n_segments", "Superpixels (approximately)", 50, 4, 400, 1, help="SLIC's target number of segments"),
        Param("compactness", "SLIC compactness", 10.0, 0.1, 100.0, 0.1, help="Higher: more square superpixels"),
        Param("fill", "Removed superpixels become", "mean", choices=FILLS, help=ALL_SUBSTRATE_HELP),
    ),
    passes=lambda params, n: n * (int(params["n_segments"]) + 1),
))
