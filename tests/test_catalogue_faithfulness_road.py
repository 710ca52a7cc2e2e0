"""The faithfulness catalogue, part 1 (ROAD, faithfulness correlation and estimate,
monotonicity and monotonicity correlation) against Quantus 0.6.0 on the same tiny seeded
CNN, images and maps (its NumPy draws made identical by seeding the global stream as ours),
the documented differences, and the closed forms (a linear model explained by its exact
contributions; linear imputation of a plane)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import explain
from explain.methods.registry import MethodSpec
from explain.metrics import MetricInput, get_metric
from explain.metrics.registry import Metric
from explain.metrics.substrates import remove_pixels

quantus = pytest.importorskip("quantus")
from quantus.functions.perturb_func import noisy_linear_imputation  # noqa: E402

N = 6
QUIET = {"disable_warnings": True}
TOLERANCE = 1e-5  # logits of the same model on the same inputs in batches of other sizes: float32 rounding


class TinyCNN(nn.Module):
    """A seeded random CNN: conv, ReLU, 2x2 pooling, linear (3 classes)."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))
        self.fc = nn.Linear(6 * (side // 2) ** 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def setup(channels: int, side: int, seed: int = 0) -> tuple[explain.ModelBundle, np.ndarray, np.ndarray, np.ndarray]:
    """A bundle (mean 0, std 1: the model's input is the pixels), images, smooth-ish maps
    without ties, and the top-1 classes."""
    model = TinyCNN(channels, side).eval()
    bundle = explain.make_bundle("tiny", model, ["a", "b", "c"], input_size=side, mean=(0.0,) * channels,
                                 std=(1.0,) * channels, device="cpu", batch_size=64)
    rng = np.random.default_rng(seed)
    x = rng.random((N, channels, side, side)).astype(np.float32)
    maps = rng.normal(size=(N, side, side)) + np.linspace(-1, 1, side)[None, :, None]
    with torch.no_grad():
        targets = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return bundle, x, maps, targets


def ours(key: str, bundle: explain.ModelBundle, x: np.ndarray, maps: np.ndarray, targets: np.ndarray,
         progress: Any = None, **params: Any) -> dict[str, Any]:
    metric = get_metric(key)
    assert isinstance(metric, Metric)
    data = MetricInput(bundle, torch.from_numpy(x), maps, torch.from_numpy(targets), MethodSpec.of("saliency"),
                       progress=progress)
    return metric.compute(data, metric.resolve_params(params))


def values(key: str, *args: Any, **params: Any) -> np.ndarray:
    """Every image's value (NaN where skipped) of the one-value-per-image metric `key`."""
    curves = ours(key, *args, **params)[key]
    out = np.full(len(args[1]), np.nan)
    out[list(curves.kept)] = curves.aucs
    return out


def theirs(metric: Any, bundle: explain.ModelBundle, x: np.ndarray, maps: np.ndarray, targets: np.ndarray,
           seed: int | None = None) -> Any:
    if seed is not None:
        np.random.seed(seed)  # Quantus draws from NumPy's global stream
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric(model=bundle.model, x_batch=x, y_batch=targets, a_batch=maps[:, None], device="cpu")


@pytest.mark.parametrize("channels,side", [(1, 8), (3, 12)])
def test_noisy_linear_imputation_gives_quantus_images(channels: int, side: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.random((3, channels, side, side))
    order = np.argsort(-rng.random((3, side * side)), axis=1)
    ranks = np.argsort(order, axis=1)
    counts = np.array([3, side * side // 2, side * side - 2])
    np.random.seed(7)
    reference: np.ndarray = np.stack([noisy_linear_imputation(x[i], order[i, :counts[i]], noise=0.05)  # type: ignore[arg-type]
                          for i in range(3)])
    removed = torch.from_numpy(ranks < counts[:, None]).view(3, side, side)
    mine = remove_pixels(torch.from_numpy(x), removed, "linear", noise=0.05, rng=np.random.RandomState(7),
                         order=torch.from_numpy(ranks))
    np.testing.assert_allclose(mine.numpy(), reference, atol=1e-10)


def test_linear_imputation_of_a_plane_is_exact_inside() -> None:
    """The neighbours' weighted mean of an affine image is the image itself, so a hole
    away from the border is filled exactly (without noise)."""
    yy, xx = np.mgrid[0:10, 0:10].astype(np.float64)
    plane = torch.from_numpy(np.stack([0.3 * yy - 0.2 * xx + 1, 0.1 * xx])[None])
    removed = torch.zeros(1, 10, 10, dtype=torch.bool)
    removed[0, 2:8, 3:7] = True
    filled = remove_pixels(plane, removed, "linear")
    torch.testing.assert_close(filled, plane, atol=1e-10, rtol=0)
    assert torch.equal(remove_pixels(plane, removed, "zero")[0, :, 2:8, 3:7], torch.zeros(2, 6, 4, dtype=plane.dtype))


def test_road_morf_agrees_with_quantus_percentage_by_percentage() -> None:
    """Quantus's default 50 percentages, imputation and noise: the same accuracies."""
    bundle, x, maps, targets = setup(1, 8)
    curves = ours("road", bundle, x, maps, targets, steps=50, seed=5)
    reference = theirs(quantus.ROAD(**QUIET), bundle, x, maps, targets, seed=5)
    assert list(reference) == list(range(1, 100, 2))
    np.testing.assert_allclose(curves["road_morf"].x * 100, list(reference))
    np.testing.assert_array_equal(curves["road_morf"].aggregate, list(reference.values()))
    assert 0 < curves["road_morf"].score < 1 and curves["road_lerf"].num_units == N


def test_road_runs_on_colour_images_where_quantus_fails() -> None:
    """Documented difference: Quantus 0.6.0 ranks channel values but imputes pixels."""
    bundle, x, maps, targets = setup(3, 8)
    with pytest.raises(IndexError):
        theirs(quantus.ROAD(**QUIET), bundle, x, maps, targets, seed=0)
    curves = ours("road", bundle, x, maps, targets, steps=4)
    for key in ("road_morf", "road_lerf"):
        assert set(np.unique(curves[key].curves)) <= {0.0, 1.0} and curves[key].curves.shape == (N, 4)


def test_faithfulness_correlation_agrees_with_quantus() -> None:
    bundle, x, maps, targets = setup(1, 8)
    mine = values("faithfulness_correlation", bundle, x, maps, targets, runs=20, subset_fraction=0.25,
                  substrate="zero", seed=3)
    metric = quantus.FaithfulnessCorrelation(nr_runs=20, subset_size=16, perturb_baseline=0.0,
                                             return_aggregate=False, **QUIET)
    reference = theirs(metric, bundle, x, maps, targets, seed=3)
    np.testing.assert_allclose(mine, reference, atol=TOLERANCE)
    assert np.isfinite(mine).all()


def test_faithfulness_estimate_agrees_with_quantus_on_colour_images() -> None:
    """36 groups of 4 pixels here = Quantus's steps of 12 channel values."""
    bundle, x, maps, targets = setup(3, 12)
    mine = values("faithfulness_estimate", bundle, x, maps, targets, steps=36, substrate="zero")
    metric = quantus.FaithfulnessEstimate(features_in_step=12, perturb_baseline=0.0, **QUIET)
    np.testing.assert_allclose(mine, theirs(metric, bundle, x, maps, targets), atol=TOLERANCE)


def restoring(x: np.ndarray) -> Any:
    """A Quantus perturb function that puts the image's values back at the indices (what
    Arya et al.'s monotonicity does; Quantus 0.6.0's default refills the baseline)."""
    flat = x.reshape(len(x), -1)

    def restore(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
        out = arr.copy()
        rows = np.arange(len(arr))[:, None]
        out[rows, indices] = flat[rows, indices]
        return out

    return restore


def test_monotonicity_agrees_with_quantus_given_a_restoring_perturbation() -> None:
    """3 groups of 48 pixels here = Quantus's steps of 144 channel values."""
    bundle, x, maps, targets = setup(3, 12)
    mine = values("monotonicity", bundle, x, maps, targets, steps=3, substrate="zero")
    fixed = quantus.Monotonicity(features_in_step=144, perturb_baseline=0.0, perturb_func=restoring(x), **QUIET)
    np.testing.assert_array_equal(mine, np.asarray(theirs(fixed, bundle, x, maps, targets), dtype=float))
    # Documented difference: Quantus 0.6.0's own Monotonicity never restores the image: every map scores True.
    default = quantus.Monotonicity(features_in_step=144, perturb_baseline=0.0, **QUIET)
    assert all(theirs(default, bundle, x, maps, targets)) and all(theirs(default, bundle, x, -maps, targets))
    assert 0 < mine.sum() < N  # monotonic and not: the agreement compares both outcomes


def test_monotonicity_correlation_agrees_with_quantus() -> None:
    """Quantus's uniform grey levels drawn from the same seeded stream; 36 groups of 4
    pixels = Quantus's steps of 12 channel values."""
    bundle, x, maps, targets = setup(3, 12)
    mine = values("monotonicity_correlation", bundle, x, maps, targets, steps=36, n_samples=4, seed=11)
    metric = quantus.MonotonicityCorrelation(nr_samples=4, features_in_step=12, **QUIET)
    np.testing.assert_allclose(mine, theirs(metric, bundle, x, maps, targets, seed=11), atol=TOLERANCE)


class Linear(nn.Module):
    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.fc = nn.Linear(channels * side * side, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("key,params", [("faithfulness_correlation", {"runs": 12, "subset_fraction": 0.1}),
                                        ("faithfulness_estimate", {"steps": 16})])
def test_exact_contributions_of_a_linear_model_correlate_perfectly(key: str, params: dict) -> None:
    """Logit drop of removing S (zero substrate) = sum over S of w x = the map's sum over
    S when the map is w x summed over channels: r = 1, and -1 for the negated map."""
    side, channels = 8, 3
    model = Linear(channels, side).eval()
    bundle = explain.make_bundle("linear", model, ["a", "b"], input_size=side, mean=(0.0,) * 3, std=(1.0,) * 3,
                                 device="cpu")
    x = np.random.default_rng(2).random((4, channels, side, side)).astype(np.float32)
    targets = np.array([0, 1, 0, 1])
    weights = model.fc.weight.detach().numpy().reshape(2, channels, side, side)
    contributions = (weights[targets] * x).sum(axis=1).astype(np.float64)
    np.testing.assert_allclose(values(key, bundle, x, contributions, targets, substrate="zero", **params), 1.0,
                               atol=1e-5)
    np.testing.assert_allclose(values(key, bundle, x, -contributions, targets, substrate="zero", **params), -1.0,
                               atol=1e-5)


@pytest.mark.parametrize("key,params", [("road", {"steps": 3}), ("faithfulness_correlation", {"runs": 5}),
                                        ("faithfulness_estimate", {"steps": 5}), ("monotonicity", {"steps": 5}),
                                        ("monotonicity_correlation", {"steps": 4, "n_samples": 3}),
                                        ("monotonicity_correlation", {"steps": 4, "substrate": "blur"})])
def test_progress_counts_the_declared_passes(key: str, params: dict) -> None:
    bundle, x, maps, targets = setup(3, 8)
    seen: list[tuple[int, int]] = []
    ours(key, bundle, x, maps, targets, progress=lambda done, total: seen.append((done, total)), **params)
    metric = get_metric(key)
    declared = metric.passes(metric.resolve_params(params), N)
    assert seen[-1] == (declared, declared) and all(total == declared for _, total in seen)
    assert metric.page == "Faithfulness"


@pytest.mark.parametrize("key", ["faithfulness_estimate", "monotonicity", "monotonicity_correlation"])
def test_an_images_value_does_not_depend_on_its_batch_mates(key: str) -> None:
    bundle, x, maps, targets = setup(3, 8)
    params = {"steps": 8, "substrate": "mean"}
    whole = values(key, bundle, x, maps, targets, **params)
    alone = [values(key, bundle, x[i:i + 1], maps[i:i + 1], targets[i:i + 1], **params)[0] for i in range(2)]
    np.testing.assert_allclose(whole[:2], alone, atol=1e-6)


def test_deletion_and_irof_offer_noisy_linear_imputation() -> None:
    """The deletion curve under "linear" leaves the unremoved pixels and ends, like "zero",
    on the image with nothing left to interpolate from; IROF runs with it too."""
    from explain.metrics import deletion_insertion

    bundle, x, maps, targets = setup(3, 12)
    images = torch.from_numpy(x)
    linear = deletion_insertion(bundle, images, {"m": maps}, targets.tolist(), substrate="linear", steps=4)
    zero = deletion_insertion(bundle, images, {"m": maps}, targets.tolist(), substrate="zero", steps=4)
    np.testing.assert_allclose(linear.deletion["m"].curves[:, [0, -1]], zero.deletion["m"].curves[:, [0, -1]])
    assert not np.allclose(linear.deletion["m"].curves[:, 1:-1], zero.deletion["m"].curves[:, 1:-1])
    np.testing.assert_allclose(linear.insertion["m"].curves, zero.insertion["m"].curves)  # insertion has no substrate
    irof = values_of_irof(bundle, x, maps, targets)
    assert irof.shape == (N,) and np.isfinite(irof).all()


def values_of_irof(bundle: explain.ModelBundle, x: np.ndarray, maps: np.ndarray, targets: np.ndarray) -> np.ndarray:
    curves = ours("irof", bundle, x, maps, targets, fill="linear", n_segments=6)["irof"]
    return curves.aucs


def test_road_detail_shows_both_orders_at_a_few_fractions() -> None:
    bundle, x, maps, targets = setup(3, 12)
    metric = get_metric("road")
    assert isinstance(metric, Metric) and metric.detail is not None
    data = MetricInput(bundle, torch.from_numpy(x), maps, torch.from_numpy(targets), MethodSpec.of("saliency"))
    strip = metric.detail(data, metric.resolve_params({}), 1)
    assert strip.images.shape == (10, 12, 12, 3) and strip.images.dtype == np.uint8
    assert [c.split(" ")[0] for c in strip.captions] == ["MoRF"] * 5 + ["LeRF"] * 5
    assert "p = probability of class" in strip.note
