"""How alike two attribution maps are: the four measures of Adebayo et al. (NeurIPS 2018,
"Sanity checks for saliency maps"), as their code computes them
(github.com/adebayoj/sanity_checks_saliency, notebooks/*randomization*.ipynb):

- Spearman |map|: rank correlation of the absolute values (Spearman's rho, `spearman_matrix`);
- Spearman (signed): rank correlation of the signed values;
- SSIM: `skimage.metrics.structural_similarity` of the two maps min-max scaled to
  [0, 1], Gaussian weights (sigma 1.5), data range 1 (their skimage inferred a range
  of 2 from the float dtype, which inflates every value; 1 is the maps' real range);
- HOG: Spearman rank correlation of the `skimage.feature.hog` descriptors of the two
  min-max scaled maps (16 x 16-pixel cells, scikit-image's other defaults: 9
  orientations, 3 x 3-cell blocks, L2-Hys); images under 48 pixels use cells of a third
  of their side so one block fits.

A constant map has no ranking: its rank correlation with a non-constant map is taken
as 0, with another constant map as 1 (scipy returns NaN for both), and min-max scaling
maps it to zeros. So a map that the randomised model flattens to nothing scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import rankdata
from skimage.feature import hog
from skimage.metrics import structural_similarity

HOG_CELL = 16


@dataclass(frozen=True)
class Similarity:
    """A similarity of two (H, W) maps: `key` names it in score keys, `label` in titles."""

    key: str
    label: str
    compute: Callable[[np.ndarray, np.ndarray], float]
    description: str


def unit_range(m: np.ndarray) -> np.ndarray:
    """`m` min-max scaled to [0, 1] (zeros when constant), as Adebayo et al.'s `normalize_image`."""
    m = np.asarray(m, dtype=np.float64)
    low, high = m.min(), m.max()
    return (m - low) / (high - low) if high > low else np.zeros_like(m)


def spearman_matrix(maps: np.ndarray) -> np.ndarray:
    """(M, M) Spearman's rho between the rows of `maps` (M, P): Pearson's r of their
    average ranks (`scipy.stats.rankdata`); a constant row correlates 0 with a
    non-constant one and 1 with another constant one."""
    ranks = rankdata(maps, axis=1)
    constant = np.all(maps == maps[:, :1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(ranks) if len(maps) > 1 else np.ones((1, 1))
    rho = np.atleast_2d(rho)
    both, one = constant[:, None] & constant[None, :], constant[:, None] ^ constant[None, :]
    rho = np.where(both, 1.0, np.where(one, 0.0, rho))
    np.fill_diagonal(rho, 1.0)
    return rho


def paired_rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) Spearman's rho of each row of `a` (N, P) with the same row of `b`, for every
    row at once, with `spearman_matrix`'s convention for constant rows."""
    ranks_a, ranks_b = rankdata(a, axis=1), rankdata(b, axis=1)
    ranks_a -= ranks_a.mean(axis=1, keepdims=True)
    ranks_b -= ranks_b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ranks_a * ranks_b).sum(axis=1) / np.sqrt((ranks_a**2).sum(axis=1) * (ranks_b**2).sum(axis=1))
    constant_a, constant_b = np.all(a == a[:, :1], axis=1), np.all(b == b[:, :1], axis=1)
    return np.where(constant_a & constant_b, 1.0, np.where(constant_a | constant_b, 0.0, rho))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two flattened arrays (`spearman_matrix` of the pair)."""
    return float(spearman_matrix(np.stack([np.ravel(a), np.ravel(b)]))[0, 1])


def hog_descriptor(m: np.ndarray) -> np.ndarray:
    """HOG of the min-max scaled map, 16-pixel cells (a third of the side below 48 pixels)."""
    side = min(m.shape)
    cell = HOG_CELL if side >= 3 * HOG_CELL else max(1, side // 3)
    return hog(unit_range(m), pixels_per_cell=(cell, cell), cells_per_block=(3, 3))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(unit_range(a), unit_range(b), data_range=1.0, gaussian_weights=True))


SIMILARITIES: tuple[Similarity, ...] = (
    Similarity("spearman_abs", "Spearman |map|", lambda a, b: rank_correlation(np.abs(a), np.abs(b)),
               "Spearman rank correlation of the absolute maps"),
    Similarity("spearman", "Spearman (signed)", rank_correlation, "Spearman rank correlation of the signed maps"),
    Similarity("ssim", "SSIM", ssim, "structural similarity of the maps scaled to [0, 1]"),
    Similarity("hog", "HOG", lambda a, b: rank_correlation(hog_descriptor(a), hog_descriptor(b)),
               "rank correlation of the maps' histograms of oriented gradients"),
)


def similarities(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Every measure of two (H, W) maps, by key."""
    return {s.key: s.compute(a, b) for s in SIMILARITIES}
