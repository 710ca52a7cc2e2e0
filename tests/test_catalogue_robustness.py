"""The robustness catalogue (average sensitivity, local Lipschitz estimate, relative input
and output stability) against Quantus 0.6.0 on the same tiny model, images and maps, with
Quantus's own perturbation functions drawing the same numbers (numpy seeded alike) and
our attribute call as its `explain_func`; the documented differences; closed forms."""

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
from explain.metrics import stability
from explain.metrics.executor import MetricBatch, score_method
from explain.metrics.registry import Metric
from tests.synthetic import LinearClassifier, bundle_of

quantus = pytest.importorskip("quantus")

SIDE = 12
N = 5
SEED = 3
SAMPLES = 6
TOLERANCE = 1e-5  # relative: Quantus computes the input differences in float32, we in float64


@pytest.fixture(scope="module")
def tiny() -> tuple[explain.ModelBundle, torch.Tensor, torch.Tensor]:
    """A seeded tanh CNN (smooth: its gradients move with the input), 12 px images, each
    explained for its predicted class."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, 6, 3, padding=1), nn.Tanh(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 4)).eval()
    bundle = bundle_of(model, SIDE, 4, cam_layer="3")  # the second tanh: the representation layer
    x = torch.randn(N, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    return bundle, x, bundle.logits(x).argmax(1)


def run(key: str, bundle: explain.ModelBundle, x: torch.Tensor, targets: torch.Tensor, method: str = "saliency",
        **params: Any) -> dict[str, np.ndarray]:
    """Every score of family `key` per image (NaN where skipped), on the method's maps of x."""
    spec = MethodSpec.of(method)
    maps = explain.attribute(bundle, x, method, targets.tolist())
    metric = get_metric(key)
    assert isinstance(metric, Metric)
    out = {}
    for score, curves in metric.compute(MetricInput(bundle, x, maps, targets, spec),
                                        metric.resolve_params(params)).items():
        values = np.full(len(x), np.nan)
        values[list(curves.kept)] = curves.aucs
        out[score] = values
    return out


def quantus_values(reference: Any, bundle: explain.ModelBundle, x: torch.Tensor, targets: torch.Tensor,
                   method: str = "saliency") -> np.ndarray:
    """Quantus's metric on the same maps, explaining perturbed inputs through our attribute
    call, after numpy is seeded as ours is."""

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        return explain.attribute(bundle, torch.as_tensor(inputs), method, [int(t) for t in targets])

    maps = explain.attribute(bundle, x, method, targets.tolist())
    np.random.seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = reference(model=bundle.model, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None],
                           explain_func=explain_func, device="cpu")
    return np.asarray(values, dtype=np.float64)


QUIET = {"disable_warnings": True, "nr_samples": SAMPLES}


def test_average_sensitivity_agrees_with_quantus(tiny):
    ours = run("avg_sensitivity", *tiny, n_samples=SAMPLES, seed=SEED)["avg_sensitivity"]
    reference = quantus_values(quantus.AvgSensitivity(**QUIET), *tiny)
    np.testing.assert_allclose(ours, reference, rtol=TOLERANCE)
    assert np.all(ours > 1e-3)  # the maps do move: the comparison compares numbers


def test_local_lipschitz_agrees_with_quantus_normalising_each_map_alone(tiny):
    ours = run("local_lipschitz", *tiny, n_samples=SAMPLES, seed=SEED)["local_lipschitz"]
    per_image = quantus_values(
        quantus.LocalLipschitzEstimate(normalise_func_kwargs={"normalise_axes": (1, 2, 3)}, **QUIET), *tiny)
    np.testing.assert_allclose(ours, per_image, rtol=TOLERANCE)
    assert np.all(ours > 1e-3)


def test_local_lipschitz_differs_from_quantus_by_its_batch_wide_normalisation_only(tiny):
    """Quantus divides every map by the batch's largest value: an image's score then depends
    on its batch mates; for a batch of one the two are the same."""
    bundle, x, targets = tiny
    ours = run("local_lipschitz", bundle, x, targets, n_samples=SAMPLES, seed=SEED)["local_lipschitz"]
    batch_wide = quantus_values(quantus.LocalLipschitzEstimate(**QUIET), bundle, x, targets)
    assert not np.allclose(ours, batch_wide, rtol=1e-3)
    alone = run("local_lipschitz", bundle, x[:1], targets[:1], n_samples=SAMPLES, seed=SEED)["local_lipschitz"]
    alone_quantus = quantus_values(quantus.LocalLipschitzEstimate(**QUIET), bundle, x[:1], targets[:1])
    np.testing.assert_allclose(alone, alone_quantus, rtol=TOLERANCE)


def test_relative_input_output_and_representation_stability_agree_with_quantus(tiny):
    ours = run("relative_stability", *tiny, n_samples=SAMPLES, seed=SEED)
    ris = quantus_values(quantus.RelativeInputStability(**QUIET), *tiny)
    ros = quantus_values(quantus.RelativeOutputStability(**QUIET), *tiny)
    rrs = quantus_values(quantus.RelativeRepresentationStability(layer_names=["3"], **QUIET), *tiny)
    assert np.isfinite(ris).all() and np.isfinite(ros).all()  # no perturbation flipped a prediction
    np.testing.assert_allclose(ours["relative_input_stability"], ris, rtol=TOLERANCE)
    np.testing.assert_allclose(ours["relative_output_stability"], ros, rtol=TOLERANCE)
    np.testing.assert_allclose(ours["relative_representation_stability"], rrs, rtol=TOLERANCE)
    assert len(set(np.round(ris / ros, 6))) > 1  # three different scores, not one scaled


def test_relative_stability_keeps_the_perturbations_that_keep_the_prediction(tiny):
    """Large noise flips some predictions: Quantus's `np.max` then makes the image NaN; ours is
    the max over the perturbations that kept it (the paper's definition): Quantus's value
    where Quantus has one, at most the max over every perturbation elsewhere."""
    noise = {"perturb_func_kwargs": {"lower_bound": -3.0, "upper_bound": 3.0}}
    ours = run("relative_stability", *tiny, n_samples=SAMPLES, seed=SEED, noise_low=-3.0, noise_high=3.0)
    for key, reference in (("relative_input_stability", quantus.RelativeInputStability),
                           ("relative_output_stability", quantus.RelativeOutputStability)):  # RRS: the same max
        strict = quantus_values(reference(**noise, **QUIET), *tiny)
        every = quantus_values(reference(return_nan_when_prediction_changes=False, **noise, **QUIET), *tiny)
        flipped = np.isnan(strict)
        assert flipped.any() and np.isfinite(ours[key][flipped]).any()
        np.testing.assert_allclose(ours[key][~flipped], strict[~flipped], rtol=TOLERANCE)
        finite = np.isfinite(ours[key])
        assert np.all(ours[key][finite] <= every[finite] * (1 + TOLERANCE))


def test_an_image_whose_every_perturbation_flips_its_prediction_is_skipped_saying_so():
    """logits (sum(x), 0); noise in [1, 1.5] on 64 values adds 64 to 96 to sum(x): an image
    at sum -10 always flips to class 0, one at sum -200 never does."""
    bundle = grey_linear(1.0)
    x = torch.tensor([-10.0, -200.0]).view(2, 1, 1, 1).expand(2, 1, 8, 8) / 64
    targets = torch.ones(2, dtype=torch.long)
    values = run("relative_stability", bundle, x, targets, n_samples=3, noise_low=1.0, noise_high=1.5)
    metric = get_metric("relative_stability")
    assert isinstance(metric, Metric)
    maps = explain.attribute(bundle, x, "saliency", targets.tolist())
    result = metric.compute(MetricInput(bundle, x, maps, targets, MethodSpec.of("saliency")),
                            metric.resolve_params({"n_samples": 3, "noise_low": 1.0, "noise_high": 1.5}))
    for key in ("relative_input_stability", "relative_output_stability"):
        curves = result[key]
        assert np.isnan(values[key][0]) and np.isfinite(values[key][1])
        assert curves.kept == (1,) and [(s.index, s.reason) for s in curves.skipped] == [(0, stability.ALL_FLIPPED)]
    no_layer = result["relative_representation_stability"]  # the grey linear model names no CAM layer
    assert no_layer.kept == () and {s.reason for s in no_layer.skipped} == {stability.NO_LAYER}


def test_a_map_that_never_moves_scores_zero_on_every_robustness_metric():
    """A linear model's gradient is the same everywhere: Saliency's map does not move."""
    model = LinearClassifier((3, 8, 8), classes=3)
    bundle = bundle_of(model, 8, 3)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    targets = bundle.logits(x).argmax(1)
    values = {**run("avg_sensitivity", bundle, x, targets, n_samples=3),
              **run("local_lipschitz", bundle, x, targets, n_samples=3),
              **run("relative_stability", bundle, x, targets, n_samples=3, noise_low=0.0, noise_high=0.01)}
    del values["relative_representation_stability"]  # no internal layer: skipped (tested above)
    for key, v in values.items():
        np.testing.assert_allclose(v, 0.0, atol=1e-6, err_msg=key)


def grey_linear(weight: float) -> explain.ModelBundle:
    """One channel, class 0 logit = weight x sum(x), class 1 = 0: Input x Gradient's map is weight x x."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0] = weight
        model[1].bias.zero_()
    return explain.make_bundle("grey", model, ["a", "b"], input_size=8, mean=(0.0,), std=(1.0,), device="cpu")


def test_closed_forms_of_a_map_proportional_to_the_input():
    """map = c x: its Lipschitz constant is |c| (unnormalised) and its relative change is the
    input's relative change, so relative input stability is exactly 1."""
    bundle = grey_linear(-2.5)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.5
    targets = torch.zeros(3, dtype=torch.long)
    lipschitz = run("local_lipschitz", bundle, x, targets, "input_x_gradient", n_samples=4, normalise=False)
    np.testing.assert_allclose(lipschitz["local_lipschitz"], 2.5, rtol=1e-5)
    relative = run("relative_stability", bundle, x, targets, "input_x_gradient", n_samples=4)
    np.testing.assert_allclose(relative["relative_input_stability"], 1.0, rtol=1e-5)


@pytest.mark.parametrize("key,params", [("avg_sensitivity", {"n_samples": 3}), ("local_lipschitz", {"n_samples": 2}),
                                        ("relative_stability", {"n_samples": 3})])
def test_progress_counts_exactly_the_passes_the_cost_declares(tiny, key, params):
    bundle, x, targets = tiny
    metric = get_metric(key)
    assert isinstance(metric, Metric)
    resolved = metric.resolve_params(params)
    for method in ("saliency", "smoothgrad"):
        spec = MethodSpec.of(method, {"n_samples": 4} if method == "smoothgrad" else None)
        maps = explain.attribute(bundle, x, spec.key, targets.tolist(), **spec.resolved)
        reported = []
        scored = score_method(metric, resolved, MetricBatch(bundle, x, targets, ()), maps, spec, reported.append)
        assert scored.passes == sum(reported) == metric.cost(resolved, N, spec, SIDE)
        assert metric.maps_per_image(resolved) == params["n_samples"]


def test_blocks_of_perturbations_give_the_scores_of_one_block(tiny, monkeypatch):
    """Memory bound: the perturbations go to the method in blocks; the noise stream and
    the scores do not depend on where the blocks are cut."""
    whole = run("relative_stability", *tiny, n_samples=5, seed=SEED)
    monkeypatch.setattr(stability, "BLOCK_VALUES", 2 * N * 3 * SIDE * SIDE)  # two samples per block
    cut = run("relative_stability", *tiny, n_samples=5, seed=SEED)
    for key in whole:  # the same noise; the model's float rounding may vary with its batch size
        np.testing.assert_allclose(cut[key], whole[key], rtol=TOLERANCE)


def test_the_same_seed_gives_the_same_scores_and_another_seed_others(tiny):
    first = run("avg_sensitivity", *tiny, n_samples=2, seed=7)["avg_sensitivity"]
    np.testing.assert_array_equal(run("avg_sensitivity", *tiny, n_samples=2, seed=7)["avg_sensitivity"], first)
    assert not np.allclose(run("avg_sensitivity", *tiny, n_samples=2, seed=8)["avg_sensitivity"], first)


def test_an_empty_noise_interval_is_refused_in_one_line(tiny):
    with pytest.raises(ValueError, match="noise_high .* must exceed noise_low"):
        run("relative_stability", *tiny, n_samples=1, noise_low=0.2, noise_high=0.2)


def test_the_detail_shows_the_first_perturbation_the_metric_drew(tiny):
    bundle, x, targets = tiny
    metric = get_metric("avg_sensitivity")
    assert isinstance(metric, Metric) and metric.detail is not None
    spec = MethodSpec.of("saliency")
    maps = explain.attribute(bundle, x, "saliency", targets.tolist())
    params = metric.resolve_params({"n_samples": 1, "seed": SEED})
    strip = metric.detail(MetricInput(bundle, x, maps, targets, spec), params, 2)
    assert strip.images.shape == (4, SIDE, SIDE, 3) and strip.maps is not None
    noise = np.random.RandomState(SEED).uniform(-0.2, 0.2, size=(1, N, 3 * SIDE * SIDE))[0, 2]
    perturbed = torch.from_numpy((x[2].numpy().ravel() + noise).astype(np.float32)).view(1, 3, SIDE, SIDE)
    np.testing.assert_allclose(strip.maps[3], explain.attribute(bundle, perturbed, "saliency", [int(targets[2])])[0])
    change = np.linalg.norm(strip.maps[3] - maps[2]) / np.linalg.norm(maps[2])  # one sample: the score itself
    score = metric.compute(MetricInput(bundle, x, maps, targets, spec), params)["avg_sensitivity"].aucs[2]
    assert change == pytest.approx(score, rel=1e-5) and f"{change:.1%}" in strip.note
