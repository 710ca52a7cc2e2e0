"""The axiomatic metrics (completeness, non-sensitivity, input invariance) against Quantus
0.6.0 on the same tiny models, images and maps, their closed forms, and where they
deliberately differ (cells of all channels, the shift absorbed along the borders too)."""

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
from explain.metrics.axiomatic import NOT_ABSORBED, shifted_bundle
from explain.metrics.substrates import make_substrate
from tests.synthetic import LinearClassifier

quantus = pytest.importorskip("quantus")

SIDE = 8
N = 4
QUIET = {"disable_warnings": True}


class TinyCNN(nn.Module):
    """conv -> ReLU -> linear, seeded; `padding` on the convolution."""

    def __init__(self, channels: int = 1, padding: int = 0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(channels, 4, 3, padding=padding)
        self.relu = nn.ReLU()
        side = SIDE - 2 + 2 * padding
        self.fc = nn.Linear(4 * side * side, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


def bundle_of(model: nn.Module, channels: int = 1) -> explain.ModelBundle:
    return explain.make_bundle(type(model).__name__, model, ["a", "b", "c", "d"][:3 if not isinstance(
        model, LinearClassifier) else 4], input_size=SIDE, mean=(0.0,) * channels, std=(1.0,) * channels,
        device="cpu")


def images(channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(N, channels, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


TARGETS = torch.tensor([0, 1, 2, 0])


def ours(key: str, bundle: explain.ModelBundle, x: torch.Tensor, maps: np.ndarray, method: str = "saliency",
         **params: Any) -> dict[str, np.ndarray]:
    """Every score's value per image (NaN where skipped) of metric `key`."""
    metric = get_metric(key)
    data = MetricInput(bundle, x, maps, TARGETS[: len(x)], MethodSpec.of(method))
    out = {}
    for score, curves in metric.compute(data, metric.resolve_params(params)).items():  # type: ignore[attr-defined]
        values = np.full(len(x), np.nan)
        values[list(curves.kept)] = curves.aucs
        out[score] = values
    return out


def theirs(metric: Any, model: nn.Module, x: torch.Tensor, maps: np.ndarray, **kwargs: Any) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric(model=model, x_batch=x.numpy(), y_batch=TARGETS[: len(x)].numpy(),
                     a_batch=maps[:, None].astype(np.float64), device="cpu", **kwargs)
    return np.asarray(out, dtype=np.float64)


def maps_of(bundle: explain.ModelBundle, x: torch.Tensor, method: str) -> np.ndarray:
    return explain.attribute(bundle, x, method, TARGETS[: len(x)].tolist())


# Completeness


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
@pytest.mark.parametrize("baseline", ["black", "mean", "blur"])
def test_completeness_agrees_with_quantus(method: str, baseline: str) -> None:
    """The gap |sum(map) - (f(x) - f(baseline))| from Quantus's own f(x) - f(baseline) (read
    through its `output_func`), with the same baseline image handed to Quantus as an array."""
    bundle, x = bundle_of(TinyCNN()), images()
    maps = maps_of(bundle, x, method)
    differences: list[np.ndarray] = []

    def record(difference: np.ndarray) -> np.ndarray:
        differences.append(np.asarray(difference, dtype=np.float64))
        return difference

    fill = make_substrate(x, baseline).reshape(N, -1).numpy()
    verdicts = theirs(quantus.Completeness(normalise=False, abs=False, output_func=record,
                                           perturb_baseline=fill, **QUIET), bundle.model, x, maps)
    reference = np.abs(maps.reshape(N, -1).astype(np.float64).sum(axis=1) - differences[0])
    mine = ours("completeness", bundle, x, maps, method, baseline=baseline)["completeness"]
    np.testing.assert_allclose(mine, reference, atol=1e-5)
    assert not verdicts.any() and (mine > 0).all()  # Quantus: exact equality, False wherever a gap is left


def test_completeness_is_zero_where_quantus_says_the_map_is_complete() -> None:
    """A map holding f(x) - f(0) in one pixel: Quantus's True, a gap of 0 here."""
    bundle, x = bundle_of(TinyCNN()), images()
    logits = bundle.logits(torch.cat([x, torch.zeros_like(x)]))[:, :3]
    difference = (logits[:N] - logits[N:]).gather(1, TARGETS.view(-1, 1)).view(-1).numpy()
    maps = np.zeros((N, SIDE, SIDE), dtype=np.float32)
    maps[:, 3, 4] = difference
    verdicts = theirs(quantus.Completeness(normalise=False, abs=False, perturb_baseline=0.0, **QUIET),
                      bundle.model, x, maps)
    assert verdicts.all()
    np.testing.assert_allclose(ours("completeness", bundle, x, maps)["completeness"], 0.0, atol=1e-5)


def test_completeness_closed_forms_on_a_linear_model() -> None:
    """f = w.x + b: Input x Gradient (x * w) sums to f(x) - f(0) (gap 0 against the black
    baseline, 0 before normalisation); a zero map's gap is |f(x) - f(0)| = |w.x|."""
    model = LinearClassifier((1, SIDE, SIDE), classes=4)
    bundle, x = bundle_of(model), images()
    complete = maps_of(bundle, x, "input_x_gradient")
    np.testing.assert_allclose(ours("completeness", bundle, x, complete, "input_x_gradient")["completeness"], 0.0,
                               atol=1e-4)
    w = model.fc.weight.detach()[TARGETS]
    expected = (w * x.flatten(1)).sum(1).abs().numpy()
    zero = ours("completeness", bundle, x, np.zeros((N, SIDE, SIDE), np.float32))["completeness"]
    np.testing.assert_allclose(zero, expected, rtol=1e-5)


# Non-sensitivity


def half_blind_linear_model() -> LinearClassifier:
    """A linear model with small weights that ignores the left half of the image."""
    model = LinearClassifier((1, SIDE, SIDE), classes=4, seed=1)
    with torch.no_grad():
        model.fc.weight.mul_(0.3).view(4, SIDE, SIDE)[:, :, : SIDE // 2] = 0.0
    return model


def scaled_to_one(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its largest |value| (Quantus normalises by the batch's maximum,
    here by each image's: equal when every image's maximum is 1)."""
    return (maps / np.abs(maps).reshape(len(maps), -1).max(axis=1)[:, None, None]).astype(np.float32)


@pytest.mark.parametrize("case", ["saliency", "ones", "sparse", "cnn"])
def test_non_sensitivity_agrees_with_quantus(case: str) -> None:
    """One-channel images, one cell per pixel (grid = side), the zero baseline: Quantus's
    count of violating values is the share of violating cells times the pixels."""
    model = TinyCNN() if case == "cnn" else half_blind_linear_model()
    bundle, x = bundle_of(model), images(seed=2)
    rng = np.random.default_rng(0)
    maps = {
        "saliency": lambda: maps_of(bundle, x, "saliency"),
        "ones": lambda: rng.uniform(0.5, 1.0, (N, SIDE, SIDE)),  # relevance everywhere (all ones: Quantus refuses)
        "sparse": lambda: rng.random((N, SIDE, SIDE)) * (rng.random((N, SIDE, SIDE)) < 0.4),
        "cnn": lambda: rng.random((N, SIDE, SIDE)) * (rng.random((N, SIDE, SIDE)) < 0.5),
    }[case]()
    maps = scaled_to_one(np.asarray(maps))
    count = theirs(quantus.NonSensitivity(eps=1e-5, features_in_step=1, perturb_baseline=0.0, **QUIET),
                   bundle.model, x, maps)
    share = ours("non_sensitivity", bundle, x, maps, grid=SIDE, baseline="zero")["non_sensitivity"]
    np.testing.assert_array_equal(np.rint(share * SIDE * SIDE), count)
    if case == "saliency":
        assert (count == 0).all()  # zero gradient exactly where the model is blind
    if case == "ones":
        assert (count == SIDE * SIDE // 2).all()  # relevance on the blind half: every one of its pixels violates


def test_non_sensitivity_perturbs_a_pixels_channels_together() -> None:
    """The documented difference: on three channels a cell is a pixel's three values at
    once; Quantus perturbs one value at a time. With Quantus handed a perturbation that
    removes all of a pixel's channels, its count is 3 x (this share x pixels)."""
    bundle, x = bundle_of(TinyCNN(channels=3), channels=3), images(channels=3, seed=3)
    rng = np.random.default_rng(1)
    maps = scaled_to_one(rng.random((N, SIDE, SIDE)) * (rng.random((N, SIDE, SIDE)) < 0.5))
    pixels = SIDE * SIDE

    def whole_pixel(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
        out = arr.copy().reshape(len(arr), 3, pixels)
        out[np.arange(len(arr))[:, None], :, indices % pixels] = 0.0
        return out.reshape(arr.shape)

    count = theirs(quantus.NonSensitivity(eps=1e-5, perturb_func=whole_pixel, **QUIET), bundle.model, x, maps)
    share = ours("non_sensitivity", bundle, x, maps, grid=SIDE, baseline="zero")["non_sensitivity"]
    np.testing.assert_array_equal(3 * np.rint(share * pixels), count)


def test_non_sensitivity_cells_sum_their_pixels() -> None:
    """On a 2 x 2 grid of the half-blind model: the left cells are ignored by the model,
    so a map with relevance only on the right violates nowhere, and a map with relevance
    only on the left violates in all four cells."""
    bundle, x = bundle_of(half_blind_linear_model()), images(seed=4)
    right = np.zeros((N, SIDE, SIDE), np.float32)
    right[:, :, SIDE // 2:] = 1.0
    score = ours("non_sensitivity", bundle, x, right, grid=2, baseline="zero")["non_sensitivity"]
    np.testing.assert_array_equal(score, 0.0)
    score = ours("non_sensitivity", bundle, x, 1.0 - right, grid=2, baseline="zero")["non_sensitivity"]
    np.testing.assert_array_equal(score, 1.0)


# Input invariance


def quantus_explainer(method: str):
    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        bundle = bundle_of(model)
        return explain.attribute(bundle, torch.as_tensor(inputs), method, [int(t) for t in targets])[:, None]
    return explain_func


def shift_every_value(arr: np.ndarray, indices: Any, indexed_axes: Any, input_shift: float,
                      **kwargs: Any) -> np.ndarray:
    """Quantus's shift without its slip: every value of the image moves (see below)."""
    return arr + input_shift


@pytest.mark.parametrize("method,invariant", [("saliency", True), ("input_x_gradient", False),
                                              ("integrated_gradients", False)])
def test_input_invariance_agrees_with_quantus(method: str, invariant: bool) -> None:
    """An unpadded first convolution (Quantus's bias shift is then exact): gradients are
    invariant, maps that multiply by the input are not (Kindermans et al.)."""
    bundle, x = bundle_of(TinyCNN()), images(seed=5)
    maps = maps_of(bundle, x, method)
    verdicts = theirs(quantus.InputInvariance(input_shift=-1, perturb_func=shift_every_value, **QUIET), bundle.model,
                      x, maps, explain_func=quantus_explainer(method))
    mine = ours("input_invariance", bundle, x, maps, method, input_shift=-1.0)
    np.testing.assert_array_equal(mine["input_invariance"], verdicts.astype(np.float64))
    assert verdicts.all() == invariant and (mine["input_shift_change"] < 1e-5).all() == invariant


def test_the_shift_is_absorbed_along_padded_borders_too() -> None:
    """The documented difference: with a zero-padded first convolution, Quantus's copy
    (bias shifted only) computes another function on the shifted input, this copy the same."""
    model = TinyCNN(channels=3, padding=1)
    bundle, x = bundle_of(model, channels=3), images(channels=3, seed=6)
    before = bundle.logits(x)
    copy = shifted_bundle(bundle, x[:1], -1.0)
    assert copy is not None
    np.testing.assert_allclose(copy.logits(x - 1.0), before, atol=1e-4)
    wrapped = quantus.helpers.model.pytorch_model.PyTorchModel(model, channel_first=True)
    theirs_copy = wrapped.add_mean_shift_to_first_layer(-1.0, (1, 3, SIDE, SIDE))
    with torch.no_grad():
        assert (theirs_copy(x - 1.0) - before).abs().max() > 1e-2
    maps = maps_of(bundle, x, "saliency")
    assert (ours("input_invariance", bundle, x, maps, input_shift=-1.0)["input_invariance"] == 1.0).all()


def test_quantus_leaves_the_first_input_value_unshifted() -> None:
    """The documented difference: Quantus's default shift skips each image's first value
    (`perturb_batch` hands the perturbation `indices[i][1:]`), so its shifted model sees
    another input and even gradients can fail its test; here every value moves."""
    seen: list[np.ndarray] = []

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        seen.append(np.array(inputs))
        return quantus_explainer("saliency")(model, inputs, targets)

    bundle, x = bundle_of(TinyCNN()), images(seed=5)
    maps = maps_of(bundle, x, "saliency")
    verdicts = theirs(quantus.InputInvariance(input_shift=-1, **QUIET), bundle.model, x, maps,
                      explain_func=explain_func)
    moved = seen[0] - x.numpy()
    assert (moved[:, 0, 0, 0] == 0).all() and np.allclose(moved.reshape(N, -1)[:, 1:], -1.0)
    assert not verdicts.all()
    assert (ours("input_invariance", bundle, x, maps, input_shift=-1.0)["input_invariance"] == 1.0).all()


def test_input_invariance_recomputes_the_map_of_x_in_the_same_layout() -> None:
    """SmoothGrad's seeded noise depends on how images are batched: maps made one image at
    a time (as the pages do) differ from maps of the whole batch, yet the metric finds
    SmoothGrad invariant, as both its maps are drawn in one layout."""
    bundle, x = bundle_of(TinyCNN()), images(seed=7)
    one_by_one = np.concatenate([explain.attribute(bundle, x[i:i + 1], "smoothgrad", [int(TARGETS[i])])
                                 for i in range(N)])
    assert np.abs(one_by_one - maps_of(bundle, x, "smoothgrad")).max() > 1e-3
    out = ours("input_invariance", bundle, x, one_by_one, "smoothgrad")
    assert (out["input_invariance"] == 1.0).all() and (out["input_shift_change"] < 1e-5).all()


def test_input_invariance_leaves_the_model_as_it_was() -> None:
    model = TinyCNN(padding=1)
    bundle, x = bundle_of(model), images()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ours("input_invariance", bundle, x, maps_of(bundle, x, "saliency"))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert model.conv.bias is not None and not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


class Rescaled(nn.Module):
    """A model that rescales its input before its first layer: the shift is not absorbed."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyCNN()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * x)


def test_images_whose_logits_the_shift_changes_are_skipped_with_the_reason() -> None:
    bundle, x = bundle_of(Rescaled()), images()
    metric = get_metric("input_invariance")
    data = MetricInput(bundle, x, maps_of(bundle, x, "saliency"), TARGETS, MethodSpec.of("saliency"))
    curves = metric.compute(data, metric.resolve_params({}))["input_invariance"]  # type: ignore[attr-defined]
    assert curves.kept == () or len(curves.kept) == 0
    assert {s.reason for s in curves.skipped} == {NOT_ABSORBED}


def test_input_invariance_on_the_default_architecture_and_its_rectifier_form() -> None:
    """EfficientNet-Lite0 (random weights, 32 px): a bias-free stem with TensorFlow 'same'
    padding, and a rectifier form for Guided Backprop; both copies absorb the shift."""
    from explain.models.efficientnet_lite import EfficientNetLite

    model = EfficientNetLite(num_classes=3)
    bundle = explain.make_bundle("lite", model, ["a", "b", "c"], input_size=32, device="cpu",
                                 rectifier_model=EfficientNetLite(num_classes=3, rectifiers="split"))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1])
    metric = get_metric("input_invariance")
    for method in ("saliency", "guided_backprop"):
        maps = explain.attribute(bundle, x, method, targets.tolist())
        data = MetricInput(bundle, x, maps, targets, MethodSpec.of(method))
        out = metric.compute(data, metric.resolve_params({}))  # type: ignore[attr-defined]
        assert not out["input_invariance"].skipped
        assert out["input_shift_change"].aucs.max() < 1e-3, method


@pytest.mark.parametrize("key,params", [("completeness", {}), ("completeness", {"baseline": "mean"}),
                                        ("non_sensitivity", {"grid": 4}), ("input_invariance", {})])
def test_progress_counts_the_declared_passes(key: str, params: dict[str, Any]) -> None:
    """Completeness: n + 1 passes with a baseline shared by the images (black), 2n with one per image (mean)."""
    bundle, x = bundle_of(TinyCNN()), images()
    metric = get_metric(key)
    params = metric.resolve_params(params)
    spec = MethodSpec.of("integrated_gradients")
    reports: list[tuple[int, int]] = []
    data = MetricInput(bundle, x, maps_of(bundle, x, "integrated_gradients"), TARGETS, spec,
                       progress=lambda done, total: reports.append((done, total)))
    metric.compute(data, params)  # type: ignore[attr-defined]
    cost = metric.cost(params, N, spec, SIDE)  # type: ignore[attr-defined]
    assert reports[-1] == (cost, cost)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)
