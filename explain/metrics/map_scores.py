"""Metrics read off the maps alone (and the ground-truth masks): no model pass.

Localisation and complexity scores (Quantus's families of those names) are one number
per image computed from the map, so they share one shape: a function over every image
of the batch at once, `(maps (N, P), masks (N, P) | None, params) -> values (N,)`,
NaN where the score is undefined for an image. `register_map_score` turns such a
function into a registered `Metric` (one family per score, so each can be chosen on
its own in the CLI and on its page) with Quantus's preprocessing: each map divided by
its largest absolute value, then the absolute value taken where Quantus's metric does
(`abs`). Quantus divides by the largest value of the whole *batch*; here every image
is normalised on its own so that an image's score does not depend on the images it
was batched with (the scores are equal for a batch of one, and for the scale-invariant
scores whatever the batch).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..methods.registry import Param
from .base import Curves, MetricInfo, Skipped
from .registry import Metric, MetricInput, Strip, register_metric

MapScore = Callable[[np.ndarray, np.ndarray | None, Mapping[str, Any]], np.ndarray]

NO_TRUTH = "the data has no ground truth (give masks or boxes with the images)"
NO_MASK = "no ground-truth mask for this image (missing or empty)"
UNDEFINED = "the score is undefined for this map and mask"


def normalise_by_max(maps: np.ndarray) -> np.ndarray:
    """Each row divided by its largest absolute value (rows of zeros stay zeros): Quantus's
    `normalise_by_max`, per image."""
    scale = np.abs(maps).max(axis=1, keepdims=True)
    return np.divide(maps, scale, out=np.zeros_like(maps), where=scale > 0)


def prepared_maps(maps: np.ndarray, absolute: bool) -> np.ndarray:
    """(N, H, W) maps as Quantus's metrics read them: (N, H*W) float64, normalised by the
    max, absolute values where the metric takes them."""
    flat = normalise_by_max(np.asarray(maps, dtype=np.float64).reshape(len(maps), -1))
    return np.abs(flat) if absolute else flat


def map_score_values(data: MetricInput, score: MapScore, absolute: bool, needs_masks: bool,
                     params: Mapping[str, Any]) -> tuple[np.ndarray, list[Skipped]]:
    """Every image's value and the images skipped (why): no ground truth, or undefined."""
    n = len(data.maps)
    maps = prepared_maps(data.maps, absolute)
    masks = None
    skipped: list[Skipped] = []
    if needs_masks:
        if data.masks is None:
            return np.full(n, np.nan), [Skipped(i, NO_TRUTH) for i in range(n)]
        masks = np.asarray(data.masks, dtype=bool).reshape(n, -1)
        if masks.shape != maps.shape:
            raise ValueError(f"masks of shape {np.shape(data.masks)} for maps of shape {np.shape(data.maps)}")
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(score(maps, masks, params), dtype=np.float64)
    for i in range(n):
        if masks is not None and not masks[i].any():
            values[i] = np.nan
            skipped.append(Skipped(i, NO_MASK))
        elif not np.isfinite(values[i]):
            skipped.append(Skipped(i, UNDEFINED))
    return values, skipped


def map_with_mask(data: MetricInput, params: Mapping[str, Any], index: int) -> Strip:
    """Image `index` as the model saw it and its map, each with the ground-truth mask
    (tinted, outlined in cyan) when the data has one."""
    picture = data.bundle.to_display(data.images[index : index + 1])[0]
    mask = None if data.masks is None else np.asarray(data.masks[index], dtype=bool)
    attribution = np.asarray(data.maps[index], dtype=np.float32)
    note = "No ground truth for this image." if mask is None or not mask.any() else \
        f"Ground truth: {int(mask.sum())} of {mask.size} pixels ({mask.mean():.1%}), outlined in cyan."
    return Strip(np.stack([picture, picture]), ("image", "map"), note=note,
                 maps=np.stack([np.full_like(attribution, np.nan), attribution]),
                 outlines=None if mask is None else np.stack([mask, mask]))


def value_info(key: str, name: str, higher_is_better: bool, description: str, reference: str) -> MetricInfo:
    """The `MetricInfo` of a score that is one value per image."""
    return MetricInfo(key=key, name=name, higher_is_better=higher_is_better, x_label="", y_label=name,
                      description=description, reference=reference, score="mean_value")


def scalar_curves(info: MetricInfo, ident: str, values: np.ndarray, skipped: Sequence[Skipped]) -> Curves:
    """One value per image as `Curves` of `info`: the images not in `skipped` kept."""
    gone = {s.index for s in skipped}
    kept = tuple(i for i in range(len(values)) if i not in gone)
    curves = np.asarray(values, dtype=np.float64)[list(kept)][:, None] if kept else np.zeros((0, 1))
    return Curves(info, ident, np.zeros(1), curves, kept=kept, skipped=tuple(skipped))


def register_map_score(info: MetricInfo, score: MapScore, *, label: str, description: str, absolute: bool,
                       page: str, needs_masks: bool, params: tuple[Param, ...] = ()) -> Metric:
    """Register `score` as a metric family of its own (key = `info.key`), costing no model pass."""

    def compute(data: MetricInput, values_params: Mapping[str, Any]) -> dict[str, Curves]:
        values, skipped = map_score_values(data, score, absolute, needs_masks, values_params)
        return {info.key: scalar_curves(info, data.method.ident, values, skipped)}

    metric = Metric(key=info.key, label=label, scores=(info,), compute=compute, description=description,
                    params=params, passes=lambda params, n: 0, page=page, needs_masks=needs_masks,
                    detail=map_with_mask, detail_title="The map and the ground truth")
    register_metric(metric)
    return metric
