"""Method agreement: where do the methods point at the same pixels? For every image and
every pair of methods,

- Spearman |map|: the rank correlation of the two absolute maps (average ranks for ties,
  `scipy.stats.rankdata`, then Pearson's r of the ranks: Spearman's rho); a constant
  map correlates 0 with a non-constant one and 1 with another constant one (as
  `similarity.spearman_matrix`, which the similarity checks share);
- top-k IoU: intersection over union of the two maps' top `top_k` fraction of pixels by
  |map| (default 10 %, at least one pixel); ties at the cut are broken by one seeded
  random order per image, shared by all methods, so equal maps select equal pixels.

The result is a methods x methods matrix per image (`Pairs`) and its mean over images;
each method's mean agreement with the other methods is its row in the score table.
Agreement is not faithfulness, so neither direction is "better". No model passes.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..methods.registry import Param
from .base import MetricInfo, Pairs
from .randomisation import SANITY_PAGE
from .registry import Comparison, ComparisonInput, register_metric
from .similarity import spearman_matrix

REFERENCE = ("Adebayo et al. 2018 (rank correlation of maps); Tomsett, Harborne, Chakraborty, Gurram, Preece. "
             "Sanity checks for saliency metrics. AAAI 2020 (agreement between methods).")

SPEARMAN = MetricInfo(
    key="agreement_spearman",
    name="Agreement: Spearman |map|",
    higher_is_better=None,
    x_label="method",
    y_label="method",
    description="Spearman rank correlation of the absolute maps of two methods on the same image; the table gives each "
                "method's mean over the other methods.",
    reference=REFERENCE,
    score="mean_value",
)
TOP_K = MetricInfo(
    key="agreement_topk",
    name="Agreement: top-k IoU",
    higher_is_better=None,
    x_label="method",
    y_label="method",
    description="Intersection over union of the two methods' most important pixels (top fraction by |map|); the table "
                "gives each method's mean over the other methods.",
    reference=REFERENCE,
    score="mean_value",
)


def top_masks(maps: np.ndarray, fraction: float, tie_break: np.ndarray) -> np.ndarray:
    """(M, P) booleans: each row's `fraction` of largest values, at least one, ties
    broken by `tie_break` (P,) (smaller first)."""
    count = max(1, int(round(fraction * maps.shape[1])))
    masks = np.zeros(maps.shape, dtype=bool)
    for row, values in enumerate(maps):
        order = np.lexsort((tie_break, -values))
        masks[row, order[:count]] = True
    return masks


def iou_matrix(masks: np.ndarray) -> np.ndarray:
    m = masks.astype(np.float64)
    inter = m @ m.T
    sizes = m.sum(axis=1)
    return inter / (sizes[:, None] + sizes[None, :] - inter)


def agreement_pairs(data: ComparisonInput, params: Mapping[str, Any]) -> dict[str, Pairs]:
    idents = tuple(spec.ident for spec in data.methods)
    n = data.images.shape[0]
    rho = np.empty((n, len(idents), len(idents)))
    iou = np.empty_like(rho)
    for i in range(n):
        maps = np.abs(np.stack([np.asarray(data.maps[k][i], dtype=np.float64).ravel() for k in idents]))
        rho[i] = spearman_matrix(maps)
        tie_break = np.random.default_rng([int(params["seed"]), i]).random((maps.shape[1],))
        iou[i] = iou_matrix(top_masks(maps, float(params["top_k"]), tie_break))
    return {SPEARMAN.key: Pairs(SPEARMAN, idents, rho), TOP_K.key: Pairs(TOP_K, idents, iou)}


register_metric(
    Comparison(
        key="agreement",
        label="Method agreement",
        scores=(SPEARMAN, TOP_K),
        compute=agreement_pairs,
        description="For every image and pair of methods, the rank correlation of their |maps| and the overlap (IoU) "
                    "of "
        "their most important pixels; averaged over the images.",
        params=(
            Param(
                "top_k",
                "Top fraction of pixels",
                0.1,
                0.001,
                1.0,
                0.01,
                help="The most important pixels compared by IoU",
            ),
            Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Breaks ties at the top-k cut"),
        ),
        passes=lambda params, n: 0,
        page=SANITY_PAGE,
    )
)
