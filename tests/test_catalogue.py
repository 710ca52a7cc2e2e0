"""The metric catalogue (localisation, complexity) against Quantus 0.6.0 on the same maps
and masks, and the closed forms (a map equal to the mask, a constant map)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from explain.methods.registry import MethodSpec
from explain.metrics import MetricInput, get_metric
from explain.metrics.localisation import top_k_pixels

quantus = pytest.importorskip("quantus")

SIDE = 12
N = 6
TOLERANCE = 1e-6  # Quantus adds 1e-9 to a denominator after normalising by the batch max; here per image


def _inputs(maps: np.ndarray, masks: np.ndarray | None) -> MetricInput:
    n = len(maps)
    return MetricInput(bundle=None, images=torch.zeros(n, 3, SIDE, SIDE), maps=maps,  # type: ignore[arg-type]
                       targets=torch.zeros(n, dtype=torch.long), method=MethodSpec.of("saliency"), masks=masks)


def ours(key: str, maps: np.ndarray, masks: np.ndarray | None = None, **params: float) -> np.ndarray:
    """Every image's value (NaN where skipped) of metric `key`."""
    metric = get_metric(key)
    curves = metric.compute(_inputs(maps, masks), metric.resolve_params(params))[key]  # type: ignore[attr-defined]
    values = np.full(len(maps), np.nan)
    values[list(curves.kept)] = curves.aucs
    return values


def theirs(metric: object, maps: np.ndarray, masks: np.ndarray | None = None, model: torch.nn.Module | None = None,
           **kwargs: object) -> np.ndarray:
    n = len(maps)
    x = np.random.default_rng(1).random((n, 3, SIDE, SIDE)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s_batch = None if masks is None else masks[:, None].astype(np.float64)
        out = metric(model=model, x_batch=x, y_batch=np.zeros(n, dtype=int),  # type: ignore[operator]
                     a_batch=maps[:, None].astype(np.float64), s_batch=s_batch, **kwargs)
    return np.asarray(out, dtype=np.float64)


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    """Signed continuous maps (no ties) and box masks of several sizes."""
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(N, SIDE, SIDE)) + 0.3
    masks = np.zeros((N, SIDE, SIDE), dtype=bool)
    for i in range(N):
        y, x = rng.integers(0, SIDE - 4, size=2)
        h, w = rng.integers(2, 6, size=2)
        masks[i, y:y + h, x:x + w] = True
    return maps, masks


QUIET = {"disable_warnings": True}
LOCALISATION = [
    ("pointing_game", lambda: quantus.PointingGame(**QUIET), {}),
    ("attribution_localisation", lambda: quantus.AttributionLocalisation(**QUIET), {}),
    ("relevance_mass_accuracy", lambda: quantus.RelevanceMassAccuracy(**QUIET), {}),
    ("relevance_rank_accuracy", lambda: quantus.RelevanceRankAccuracy(**QUIET), {}),
    ("top_k_intersection", lambda: quantus.TopKIntersection(k=top_k_pixels(0.1, SIDE * SIDE), **QUIET),
     {"k_fraction": 0.1}),
    ("localisation_auc", lambda: quantus.AUC(**QUIET), {}),
]


@pytest.mark.parametrize("key,make,params", LOCALISATION, ids=[c[0] for c in LOCALISATION])
def test_localisation_agrees_with_quantus(batch: tuple[np.ndarray, np.ndarray], key: str, make, params: dict) -> None:
    maps, masks = batch
    mine, reference = ours(key, maps, masks, **params), theirs(make(), maps, masks)
    np.testing.assert_allclose(mine, reference, atol=TOLERANCE, equal_nan=True)
    assert np.isfinite(mine).sum() >= N - 1  # the comparison compares numbers, not NaNs


def test_focus_agrees_with_quantus_on_a_mosaic_quadrant_mask(batch: tuple[np.ndarray, np.ndarray]) -> None:
    """Quantus's Focus scores a 2x2 mosaic by the quadrants holding the target class;
    given those quadrants as the mask, ours is the same number."""
    maps, _ = batch
    quadrants = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 1, 0], [1, 0, 1, 0]])
    half = SIDE // 2
    masks = np.zeros((N, SIDE, SIDE), dtype=bool)
    for i, (a, b, c, d) in enumerate(quadrants):
        masks[i, :half, :half], masks[i, :half, half:], masks[i, half:, :half], masks[i, half:, half:] = a, b, c, d
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIDE * SIDE, 2)).eval()  # Focus asks for one
    reference = theirs(quantus.Focus(**QUIET), maps, model=model, custom_batch=quadrants)
    np.testing.assert_allclose(ours("focus", maps, masks), reference, atol=TOLERANCE)


COMPLEXITY = [
    ("sparseness", lambda: quantus.Sparseness(**QUIET)),
    ("complexity", lambda: quantus.Complexity(**QUIET)),
]


@pytest.mark.parametrize("key,make", COMPLEXITY, ids=[c[0] for c in COMPLEXITY])
def test_complexity_agrees_with_quantus(batch: tuple[np.ndarray, np.ndarray], key: str, make) -> None:
    maps, _ = batch
    np.testing.assert_allclose(ours(key, maps), theirs(make(), maps), rtol=1e-6)


def test_effective_complexity_agrees_with_quantus_image_by_image(batch: tuple[np.ndarray, np.ndarray]) -> None:
    """Quantus normalises by the batch's maximum, so it agrees image by image (a batch of
    one); on the whole batch the counts differ as documented (per-image normalisation)."""
    maps, _ = batch
    maps = maps * np.array([1.0, 1e-3, 1.0, 1e-4, 2.0, 1.0])[:, None, None]  # very different scales
    eps = 0.2
    reference = np.concatenate([theirs(quantus.EffectiveComplexity(eps=eps, **QUIET), maps[i:i + 1]) for i in range(N)])
    mine = ours("effective_complexity", maps, eps=eps)
    np.testing.assert_array_equal(mine, reference)
    assert not np.array_equal(mine, theirs(quantus.EffectiveComplexity(eps=eps, **QUIET), maps))


def test_known_answers() -> None:
    """A map equal to its mask scores 1 on every localisation score; a constant map has
    the least sparseness and the largest complexity and effective complexity."""
    masks = np.zeros((2, SIDE, SIDE), dtype=bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 7:, :4] = True
    maps = masks.astype(np.float64)
    for key in ("relevance_mass_accuracy", "attribution_localisation", "relevance_rank_accuracy", "focus",
                "pointing_game", "localisation_auc"):
        np.testing.assert_allclose(ours(key, maps, masks), 1.0, atol=1e-8, err_msg=key)
    np.testing.assert_allclose(ours("top_k_intersection", maps, masks, k_fraction=0.05), 1.0)
    constant, peaked = np.ones((1, SIDE, SIDE)), np.zeros((1, SIDE, SIDE))
    peaked[0, 3, 4] = 1.0
    noisy = np.random.default_rng(2).random((1, SIDE, SIDE))
    sparse = [ours("sparseness", m)[0] for m in (constant, noisy, peaked)]
    entropy = [ours("complexity", m)[0] for m in (constant, noisy, peaked)]
    assert sparse[0] == pytest.approx(0.0, abs=1e-9) and sparse[0] < sparse[1] < sparse[2]
    assert entropy[0] == pytest.approx(np.log(SIDE * SIDE)) and entropy[0] > entropy[1] > entropy[2]
    assert entropy[2] == pytest.approx(0, abs=1e-9)
    assert ours("effective_complexity", constant)[0] == SIDE * SIDE and ours("effective_complexity", peaked)[0] == 1


def test_images_without_ground_truth_are_skipped_with_a_reason(batch: tuple[np.ndarray, np.ndarray]) -> None:
    maps, masks = batch
    masks = masks.copy()
    masks[2] = False
    metric = get_metric("relevance_mass_accuracy")
    curves = metric.compute(_inputs(maps, masks), {})["relevance_mass_accuracy"]  # type: ignore[attr-defined]
    assert [s.index for s in curves.skipped] == [2] and "no ground-truth mask" in curves.skipped[0].reason
    none = metric.compute(_inputs(maps, None), {})["relevance_mass_accuracy"]  # type: ignore[attr-defined]
    assert none.num_units == 0 and len(none.skipped) == N and "no ground truth" in none.skipped[0].reason
    assert metric.needs_masks and not get_metric("sparseness").needs_masks
