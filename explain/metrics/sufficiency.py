"""Sufficiency (Dasgupta, Frost & Moshkovitz, ICML 2022), as Quantus 0.6.0's
`Sufficiency` computes it: an explanation is sufficient when the other images it also
applies to get the same prediction. Over the images scored together (the page's images,
or one chunk of a batch evaluation), the explanation of image i applies to image j when
the distance between their absolute maps, divided by the largest distance between any
two of them, is at most `threshold`; image i's sufficiency is the share of those other
images that the model predicts as the same class as i (its top-1 class, not the
explained class). Higher is better; one value per image. One forward pass per image.

Like Quantus's, an image's value depends on the images it is scored with: that is the
definition (the framework asks which *other* points an explanation covers). The
deliberate differences, each shown by `tests/test_catalogue_faithfulness_regions.py`:
- an image whose map is close to no other image's map is skipped with that reason,
  where Quantus scores it 0 (the share of an empty set is undefined, and a 0 would count
  against the method as if its explanation had been contradicted);
- the standardised Euclidean distance (Quantus's default, `scipy`'s "seuclidean")
  divides each pixel by its variance over the images: pixels equal in every map
  (variance 0, e.g. a CAM's flat border) tell no map apart, so they are left out, where
  Quantus's distances become NaN and every image scores 0.

Why in-house: Quantus's definition is a dozen lines around `scipy.spatial.distance.cdist`,
which this calls the same way, on the maps the product already holds.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from scipy.spatial.distance import cdist

from ..methods.registry import Param
from .base import Curves, MetricInfo, Skipped
from .perturbation import TargetOutputs
from .registry import FAITHFULNESS_PAGE, Metric, MetricInput, register_metric

DISTANCES = ("seuclidean", "euclidean", "cityblock", "cosine")
NO_NEIGHBOUR = "no other image's map is within the distance threshold"
ALONE = "sufficiency compares an image's map with the other images' maps: it needs at least two images"

SUFFICIENCY = MetricInfo(
    key="sufficiency",
    name="Sufficiency",
    higher_is_better=True,
    x_label="",
    y_label="share of the images with a close map that get the same prediction",
    description="Of the other images whose maps are close to this image's map, the share the model predicts as the "
                "same class (higher is better).",
    reference="Dasgupta, Frost, Moshkovitz. Framework for evaluating faithfulness of local explanations. ICML 2022.",
    score="mean_value",
)


def map_distances(maps: np.ndarray, distance: str) -> np.ndarray:
    """(N, N) distances between the absolute maps (N, H, W), divided by the largest one
    (all zeros stay zeros); pixels equal in every map are left out of "seuclidean"."""
    flat = np.abs(np.asarray(maps, dtype=np.float64).reshape(len(maps), -1))
    if distance == "seuclidean":
        variance = flat.var(axis=0, ddof=1) if len(flat) > 1 else np.zeros(flat.shape[1])
        varies = variance > 0
        if not varies.any():
            return np.zeros((len(flat), len(flat)))
        distances = cdist(flat[:, varies], flat[:, varies], "seuclidean", V=variance[varies])
    else:
        distances = cdist(flat, flat, distance)
    largest = np.abs(distances).max() if distances.size else 0.0
    return distances / largest if largest > 0 else distances


def sufficiency_values(maps: np.ndarray, predictions: np.ndarray, threshold: float,
                       distance: str) -> tuple[np.ndarray, np.ndarray]:
    """Each image's sufficiency (NaN without a close map) and its number of close maps."""
    close = map_distances(maps, distance) <= threshold
    np.fill_diagonal(close, False)
    same = predictions[None, :] == predictions[:, None]
    neighbours = close.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (close & same).sum(axis=1) / neighbours
    return np.where(neighbours > 0, values, np.nan), neighbours


def _compute(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    n = len(data.images)
    outputs = TargetOutputs(data, n)
    images = data.images.to(data.bundle.device, torch.float32)
    predictions = np.array([int(c) for chunk in images.split(outputs.batch_size)
                            for c in outputs.logits(chunk).argmax(dim=1).cpu()], dtype=np.int64)
    values, _ = sufficiency_values(data.maps, predictions, float(params["threshold"]), params["distance"])
    reason = ALONE if n < 2 else NO_NEIGHBOUR
    kept = tuple(int(i) for i in np.flatnonzero(np.isfinite(values)))
    skipped = tuple(Skipped(int(i), reason) for i in np.flatnonzero(~np.isfinite(values)))
    curves = values[list(kept)][:, None] if kept else np.zeros((0, 1))
    return {SUFFICIENCY.key: Curves(SUFFICIENCY, data.method.ident, np.zeros(1), curves, kept=kept, skipped=skipped)}


register_metric(Metric(
    key="sufficiency",
    label="Sufficiency",
    scores=(SUFFICIENCY,),
    compute=_compute,
    description="Among the images scored together, the maps close to an image's map (distance over the largest "
                "distance at most the threshold): the share of those images predicted as the same class "
                "(Quantus's Sufficiency; it compares images with each other, so it needs many of them).",
    params=(
        Param("threshold", "Distance threshold", 0.6, 0.0, 1.0, 0.05,
              help="Maps closer than this share of the largest distance between two maps count as close"),
        Param("distance", "Distance", "seuclidean", choices=DISTANCES,
              help="Between absolute maps (scipy's cdist): seuclidean scales each pixel by its variance over images"),
    ),
    passes=lambda params, n: n,
    page=FAITHFULNESS_PAGE,
))
