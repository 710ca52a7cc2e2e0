"""Pixel removal for ROAR/KAR: rank pixels by |attribution| (seeded tie-break), replace
the top fraction (or all but it) by a fill colour; the rankers that score pixels."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...data.training import LabelledImages
from ...methods.registry import attribute, get_method, list_methods
from ...models.bundle import ModelBundle
from ...models.small_cnn import TrainRecipe, new_model, small_cnn_bundle
from .settings import MethodSpec, Ranker


def pixel_order(maps: np.ndarray, seed: int) -> np.ndarray:
    """Flat pixel indices per image, most important (largest |map|) first; ties are
    broken by a seeded random key so flat maps do not favour the image's top rows."""
    maps = np.asarray(maps, dtype=np.float32)
    if not np.isfinite(maps).all():
        raise ValueError("the attribution maps contain NaN or infinite values")
    scores = np.abs(maps.reshape(maps.shape[0], -1))
    tiebreak = np.random.default_rng(seed).random(scores.shape, dtype=np.float32)
    order = np.lexsort((tiebreak, -scores), axis=-1)
    return order.astype(np.int32 if scores.shape[1] > 32767 else np.int16)


def degrade(
    images: torch.Tensor, order: np.ndarray, fraction: float, fill: torch.Tensor, keep: bool = False
) -> torch.Tensor:
    """Replace the top `fraction` of pixels (per `order`) by `fill` (one value per channel);
    with `keep`, keep the top fraction and replace all the others (KAR)."""
    n, c, h, w = images.shape
    k = int(round(fraction * h * w))
    order_t = torch.from_numpy(np.asarray(order, dtype=np.int64))
    chosen = order_t[:, k:] if keep else order_t[:, :k]
    mask = torch.zeros(n, h * w, dtype=torch.bool)
    mask.scatter_(1, chosen, True)
    return torch.where(mask.view(n, 1, h, w), fill.view(1, c, 1, 1).to(images.dtype), images)


def random_ranker(seed: int) -> Ranker:
    """Uniform random scores: the baseline ranking (fixed by the seed)."""
    def rank(bundle: ModelBundle, images: torch.Tensor) -> np.ndarray:
        rng = np.random.default_rng(seed + 7919)
        return rng.random((images.shape[0], *images.shape[-2:]), dtype=np.float32)
    return rank


def method_ranker(method: MethodSpec, progress: Callable[[int, int], None] | None = None) -> Ranker:
    """Maps of a registered method for each image's top-1 class, in large batches."""
    get_method(method.key)  # unknown names fail before any work

    def rank(bundle: ModelBundle, images: torch.Tensor) -> np.ndarray:
        return attribute(bundle, images, method.key, None, progress=progress, **dict(method.params))
    return rank


DEFAULT_RECIPE = TrainRecipe()  # frozen: one shared default is safe


def probe_bundle(dataset: LabelledImages, recipe: TrainRecipe = DEFAULT_RECIPE) -> ModelBundle:
    """An untrained SmallCNN bundle for this dataset: enough to ask the registry which
    methods apply (and with which parameters) before anything is trained."""
    return small_cnn_bundle(dataset, new_model(dataset, recipe, 0), recipe)


def available_methods(dataset: LabelledImages, recipe: TrainRecipe = DEFAULT_RECIPE) -> list[str]:
    """Registry methods that can rank pixels for the SmallCNN on this dataset."""
    bundle = probe_bundle(dataset, recipe)
    return [m.key for m in list_methods() if m.is_available(bundle)]
