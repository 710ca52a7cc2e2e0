"""Localisation: how much of a map falls where the evidence really is (the ground-truth
mask of each image: a segmentation, or a box). Quantus's seven localisation metrics,
with its definitions and defaults (`quantus/metrics/localisation/`, v0.6.0), each
vectorised over the images of a batch:

- pointing game (Zhang et al. 2018): 1 if a pixel of the map's maximum lies in the mask;
- attribution localisation (Kohlbrenner et al. 2020): share of |relevance| inside the mask;
- relevance mass accuracy (Arras et al. 2022): share of the (signed) relevance inside;
- relevance rank accuracy (Arras et al. 2022): share of the |mask| highest-ranked pixels
  that lie inside the mask;
- top-k intersection (Theiner et al. 2021): share of the k highest-ranked pixels inside
  (k a fraction of the pixels here, a pixel count in Quantus: 1,000 would exceed a
  28 x 28 image);
- AUC (Fawcett 2006): area under the ROC curve of the map as a detector of the mask
  (Mann-Whitney form with ties counted half: equal to sklearn's `roc_curve` + `auc`);
- focus (Arias-Duart et al. 2022): share of the positive relevance inside the mask.
  Quantus's Focus takes a 2x2 mosaic and the quadrants of the target class; here the
  mask is given directly, which is the same number when the mask is those quadrants.

Images without a mask are skipped (and said so); the metrics are offered only when the
data has ground truth. Why in-house: each is one vectorised line over the batch, and
the product's metrics share the registry's shapes; `tests/test_catalogue.py` checks
every value against Quantus on the same maps and masks.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.stats import rankdata

from ..methods.registry import Param
from .map_scores import MapScore, register_map_score, value_info

LOCALISATION_PAGE = "Localisation"


def pointing_game(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    assert masks is not None
    peak = maps == maps.max(axis=1, keepdims=True)
    return (peak & masks).any(axis=1).astype(np.float64)


def attribution_localisation(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    assert masks is not None
    ratio = (maps * masks).sum(axis=1) / (maps.sum(axis=1) + 1e-9)
    return np.where(ratio > 1, np.nan, ratio)  # Quantus: a ratio above 1 (negative relevance outside) is undefined


def relevance_mass_accuracy(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    assert masks is not None
    return (maps * masks).sum(axis=1) / maps.sum(axis=1)


def _descending_order(maps: np.ndarray) -> np.ndarray:
    return np.argsort(-maps, axis=1)  # NumPy's default sort, as Quantus (ties: its order)


def relevance_rank_accuracy(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    assert masks is not None
    sizes = masks.sum(axis=1)
    hits = np.cumsum(np.take_along_axis(masks, _descending_order(maps), axis=1), axis=1)
    return hits[np.arange(len(maps)), np.maximum(sizes - 1, 0)] / np.maximum(sizes, 1)


def top_k_pixels(fraction: float, pixels: int) -> int:
    """The k of a top-k fraction of `pixels` (at least one pixel)."""
    return max(1, min(pixels, int(round(fraction * pixels))))


def top_k_intersection(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    assert masks is not None
    k = top_k_pixels(float(params["k_fraction"]), maps.shape[1])
    return np.take_along_axis(masks, _descending_order(maps)[:, :k], axis=1).mean(axis=1)


def roc_auc(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    assert masks is not None
    ranks = rankdata(maps, axis=1)  # average ranks of ties: a tie counts half, as the ROC curve's diagonal steps
    positives = masks.sum(axis=1).astype(np.float64)
    negatives = masks.shape[1] - positives
    rank_sum = (ranks * masks).sum(axis=1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def focus(maps: np.ndarray, masks: np.ndarray | None, params: Mapping[str, Any]) -> np.ndarray:
    assert masks is not None
    positive = np.clip(maps, 0, None)
    return (positive * masks).sum(axis=1) / (positive.sum(axis=1) + 1e-9)


ARRAS = ("Arras, Osman, Samek. CLEVR-XAI: a benchmark dataset for the ground truth evaluation of neural network "
         "explanations. Information Fusion 2022.")
K_FRACTION = Param("k_fraction", "Top k (fraction of pixels)", 0.05, 0.001, 1.0, 0.001,
                   help="k as a share of the image's pixels (Quantus counts pixels: k = this x H x W)")

# (key, name, function, Quantus's `abs` default, description, reference, parameters)
SCORES: tuple[tuple[str, str, MapScore, bool, str, str, tuple[Param, ...]], ...] = (
    ("pointing_game", "Pointing game", pointing_game, False,
     "1 when the map's maximum lies inside the ground-truth mask, else 0 (mean: the hit rate).",
     "Zhang, Bargal, Lin, Brandt, Shen, Sclaroff. Top-down neural attention by excitation backprop. IJCV 2018.", ()),
    ("attribution_localisation", "Attribution localisation", attribution_localisation, True,
     "Share of the absolute relevance that lies inside the mask.",
     "Kohlbrenner, Bauer, Nakajima, Binder, Samek, Lapuschkin. Towards best practice in explaining neural network "
     "decisions with LRP. IJCNN 2020.", ()),
    ("relevance_mass_accuracy", "Relevance mass accuracy", relevance_mass_accuracy, False,
     "Share of the (signed) relevance that lies inside the mask; a map equal to the mask scores 1.", ARRAS, ()),
    ("relevance_rank_accuracy", "Relevance rank accuracy", relevance_rank_accuracy, False,
     "Of the K most relevant pixels (K = the mask's size), the share inside the mask.", ARRAS, ()),
    ("top_k_intersection", "Top-k intersection", top_k_intersection, False,
     "Of the k most relevant pixels, the share inside the mask.",
     "Theiner, Müller-Budack, Ewerth. Interpretable semantic photo geolocation. WACV 2022.", (K_FRACTION,)),
    ("localisation_auc", "Localisation AUC", roc_auc, False,
     "Area under the ROC curve of the map read as a detector of the mask's pixels (0.5: chance).",
     "Fawcett. An introduction to ROC analysis. Pattern Recognition Letters 2006.", ()),
    ("focus", "Focus", focus, False,
     "Share of the positive relevance inside the mask (Quantus: the target's quadrants of a mosaic).",
     "Arias-Duart, Parés, Garcia-Gasulla, Giménez-Abalos. Focus! Rating XAI methods and finding biases. "
     "FUZZ-IEEE 2022.",
     ()),
)

for _key, _name, _score, _absolute, _description, _reference, _params in SCORES:
    register_map_score(value_info(_key, _name, True, _description, _reference), _score, label=_name,
                       description=_description,
                       absolute=_absolute, page=LOCALISATION_PAGE, needs_masks=True, params=_params)
