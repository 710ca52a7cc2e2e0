"""Efficient and smooth MPRT (`explain.metrics.mprt_revisited`) against Quantus 0.6.0's
`EfficientMPRT` and `SmoothMPRT` on the same tiny seeded CNN, images and maps, with
Quantus handed our randomised models (its own re-seeds each layer: the documented
difference, shown below) and our method as its explainer; closed forms where they exist."""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

import explain
from explain.methods.registry import MethodSpec, Method, register, unregister
from explain.metrics import MetricInput, get_metric
from explain.metrics.mprt_revisited import EMPRT, EMPRT_MODEL, SMPRT, denoised_maps, discrete_entropy
from explain.metrics.randomisation import fully_randomised_bundle, randomised_bundles
from explain.metrics.registry import Metric
from explain.metrics.similarity import paired_rank_correlation
from tests.synthetic import bundle_of

quantus = pytest.importorskip("quantus")
from quantus.helpers.model.pytorch_model import PyTorchModel  # noqa: E402

SIDE, N, CLASSES = 12, 5, 3
TOLERANCE = 1e-6  # the same maps and draws: only float summation order could differ


class TinyCNN(nn.Module):
    """conv-BN-ReLU, conv-ReLU, global average pool, linear: seeded, in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(6, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.relu2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))))


def tiny_cnn() -> TinyCNN:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = TinyCNN()
        with torch.no_grad():
            for name, low, high in (("running_mean", -0.2, 0.2), ("running_var", 0.5, 1.5)):
                model.bn1.get_buffer(name).uniform_(low, high)
            model.bn1.weight.uniform_(0.5, 1.5)
            model.bn1.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def setup() -> tuple[explain.ModelBundle, torch.Tensor, torch.Tensor]:
    bundle = bundle_of(tiny_cnn(), SIDE, CLASSES)
    images = torch.rand(N, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return bundle, images, bundle.logits(images).argmax(dim=1)


def metric_input(bundle: explain.ModelBundle, images: torch.Tensor, targets: torch.Tensor, key: str,
                 progress: Any = None) -> MetricInput:
    spec = MethodSpec.of(key)
    maps = explain.attribute(bundle, images, key, targets.tolist())
    return MetricInput(bundle, images, maps, targets, spec, progress=progress)


def run(key: str, data: MetricInput, **params: Any) -> dict[str, Any]:
    metric = get_metric(key)
    assert isinstance(metric, Metric)
    return metric.compute(data, metric.resolve_params(params))


def explainer(bundle: explain.ModelBundle, key: str) -> Any:
    """Our method as Quantus's explain_func (and `quantus.explain`): (N, 1, H, W) maps of any model."""

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        on_model = dataclasses.replace(bundle, model=model, lock=threading.RLock())
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        return explain.attribute(on_model, x, key, np.asarray(targets).tolist())[:, None]

    return explain_func


def feed_models(monkeypatch: pytest.MonkeyPatch, models: Callable[[], Iterator[tuple[str, nn.Module]]],
                length: int) -> None:
    """Quantus's random layer generator yields ours: `models()`, (name, model) per layer."""

    def generator(self: PyTorchModel, order: str = "top_down", seed: int = 42) -> Iterator[tuple[str, nn.Module]]:
        yield from models()

    monkeypatch.setattr(PyTorchModel, "get_random_layer_generator", generator)
    monkeypatch.setattr(PyTorchModel, "random_layer_generator_length", property(lambda self: length))


def test_discrete_entropy_bins_as_numpys_histogram() -> None:
    """Quantised values (many on bin edges), a constant map and near-zero ranges, in float32
    and float64: the vectorised entropy is scipy's entropy of np.histogram's counts."""
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        for bins in (2, 7, 100):
            maps = (rng.integers(-50, 50, size=(12, 64)) / rng.integers(1, 9, size=(12, 1))).astype(dtype)
            maps[0], maps[1] = 3.3, rng.random(64) * 1e-30
            reference = [scipy.stats.entropy(np.histogram(m, bins=bins)[0]) for m in maps]
            np.testing.assert_allclose(discrete_entropy(maps, bins), reference, rtol=0, atol=1e-12)


def test_discrete_entropy_closed_forms() -> None:
    """A constant map: 0; k equally filled bins: log k."""
    halves = np.repeat([[0.0, 1.0]], 32, axis=1)
    spread = np.linspace(0.0, 1.0, 100)[None]
    out = discrete_entropy(np.concatenate([np.full((1, 64), 2.0), halves]), 10)
    np.testing.assert_allclose(out, [0.0, np.log(2)], atol=1e-12)
    np.testing.assert_allclose(discrete_entropy(spread, 100), [np.log(100)], atol=1e-12)


def test_paired_rank_correlation_is_scipys_spearman() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 40)), rng.normal(size=(6, 40))
    b[1] = a[1] ** 3  # monotone: rho = 1
    a[2] = np.round(a[2])  # ties
    reference = [scipy.stats.spearmanr(x, y)[0] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(paired_rank_correlation(a, b), reference, atol=1e-12)
    constant = paired_rank_correlation(np.ones((2, 5)), np.stack([np.ones(5), np.arange(5.0)]))
    np.testing.assert_array_equal(constant, [1.0, 0.0])  # the convention of `similarity`


def test_efficient_mprt_agrees_with_quantus(setup, monkeypatch) -> None:
    """Quantus EfficientMPRT (default discrete entropy, 100 bins, softmax outputs) on our
    fully randomised model: the same relative rise and the same ratio against the model."""
    bundle, images, targets = setup
    data = metric_input(bundle, images, targets, "input_x_gradient")
    mine = run("efficient_mprt", data, seed=5)
    random_model = fully_randomised_bundle(bundle, images[:1], 5).model
    feed_models(monkeypatch, lambda: iter([("fc", random_model)]), 1)
    metric = quantus.EfficientMPRT(compute_extra_scores=True, disable_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = metric(model=bundle.model, x_batch=images.numpy(), y_batch=targets.numpy(),
                           a_batch=data.maps[:, None], explain_func=explainer(bundle, "input_x_gradient"),
                           device="cpu")
    assert len(mine[EMPRT.key].kept) == N
    np.testing.assert_allclose(mine[EMPRT.key].aucs, reference, rtol=TOLERANCE)
    np.testing.assert_allclose(mine[EMPRT_MODEL.key].aucs,
                               metric.scores_extra["scores_delta_explanation_vs_models"], rtol=TOLERANCE)


def test_smooth_mprt_agrees_with_quantus_layer_by_layer(setup, monkeypatch) -> None:
    """Quantus SmoothMPRT with numpy seeded as ours, our explainer as `quantus.explain` and
    our cascading steps as its layers: each step's Spearman of the denoised maps."""
    bundle, images, targets = setup
    params = {"n_samples": 4, "noise": 0.2, "max_steps": 3, "seed": 9}
    data = metric_input(bundle, images, targets, "saliency")
    mine = run("smooth_mprt", data, **params)[SMPRT.key]
    trained = denoised_maps(bundle, images, targets.tolist(), data.method, 0.2, 4, np.random.RandomState(9))

    def our_steps() -> Iterator[tuple[str, nn.Module]]:  # one copy, re-initialised further at each step
        for step, random in randomised_bundles(bundle, images[:1], "cascading", 3, 9):
            yield step.label, random.model

    feed_models(monkeypatch, our_steps, 3)
    monkeypatch.setattr(quantus, "explain", explainer(bundle, "saliency"))
    metric = quantus.SmoothMPRT(layer_order="top_down", nr_samples=4, noise_magnitude=0.2, disable_warnings=True)
    np.random.seed(9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = metric(model=bundle.model, x_batch=images.numpy(), y_batch=targets.numpy(),
                           a_batch=trained[:, None], explain_func=explainer(bundle, "saliency"), device="cpu")
    theirs = np.array(list(reference.values())).T  # (N, 1 + steps): "original", then each layer
    assert len(reference) == 4 and list(reference)[1:] == list(mine.x_labels[1:])
    np.testing.assert_allclose(mine.curves, theirs, atol=TOLERANCE)
    assert np.ptp(mine.curves[:, -1]) > 0  # images differ: a comparison of numbers, not of constants


def test_quantus_randomises_same_shaped_layers_alike_and_ours_not() -> None:
    """The documented difference: Quantus re-seeds torch with seed + 1 before each layer,
    so two layers of one shape get identical weights; ours draw each layer from its own
    (seed, index) generator, and still re-initialise every layer Quantus does."""
    model = tiny_cnn()
    wrapped = PyTorchModel(model, channel_first=True, softmax=False, device="cpu")
    *_, (_, theirs) = wrapped.get_random_layer_generator(order="bottom_up", seed=42)
    bundle = bundle_of(model, SIDE, CLASSES)
    ours = fully_randomised_bundle(bundle, torch.zeros(1, 3, SIDE, SIDE), 42).model
    second = nn.Conv2d(6, 6, 3, padding=1)  # conv2's shape, re-seeded as Quantus does
    torch.manual_seed(43)
    second.reset_parameters()
    assert torch.equal(theirs.get_parameter("conv2.weight"), second.weight)
    assert not torch.equal(ours.get_parameter("conv2.weight"), second.weight)
    changed = {name for name, p in ours.named_parameters() if not torch.equal(p, model.get_parameter(name))}
    assert changed == {name for name, _ in model.named_parameters()}
    assert set(theirs.state_dict()) == set(ours.state_dict())


def _edges(bundle: explain.ModelBundle, x: torch.Tensor, target: torch.Tensor, params: Any) -> torch.Tensor:
    """|vertical differences| of the input summed over channels (the last row 0): no model."""
    return torch.nn.functional.pad((x[:, :, 1:] - x[:, :, :-1]).abs().sum(dim=1), (0, 0, 0, 1)).detach()


@pytest.fixture
def model_blind() -> Iterator[MethodSpec]:
    """A 'method' that reads the image alone: randomising the model cannot change it."""
    register(Method(key="model_blind", label="Vertical edges (test)", compute=_edges,
                    description="|vertical differences| of the input", reference="test", signed=False))
    yield MethodSpec.of("model_blind")
    unregister("model_blind")


def test_a_map_blind_to_the_model_fails_both_checks(setup, model_blind) -> None:
    """Known answers: its entropy does not rise (eMPRT 0) and, without noise, every denoised
    map equals the trained one (sMPRT curve 1 everywhere, area 1)."""
    bundle, images, targets = setup
    data = metric_input(bundle, images, targets, "model_blind")
    np.testing.assert_allclose(run("efficient_mprt", data)[EMPRT.key].aucs, 0.0, atol=1e-12)
    smooth = run("smooth_mprt", data, n_samples=2, noise=0.0, max_steps=2)[SMPRT.key]
    np.testing.assert_allclose(smooth.curves, 1.0)
    np.testing.assert_allclose(smooth.aucs, 1.0)


@pytest.mark.parametrize("key,params", [("efficient_mprt", {}), ("smooth_mprt", {"n_samples": 3, "max_steps": 2})])
def test_progress_ends_at_the_declared_cost(setup, key: str, params: dict[str, Any]) -> None:
    """The passes a run reports add up to what the budget costs it (`Metric.cost`), and
    the same seed gives the same scores."""
    bundle, images, targets = setup
    calls: list[tuple[int, int]] = []
    data = metric_input(bundle, images, targets, "saliency", progress=lambda done, total: calls.append((done, total)))
    metric = get_metric(key)
    assert isinstance(metric, Metric)
    resolved = metric.resolve_params(params)
    first = metric.compute(data, resolved)
    cost = metric.cost(resolved, N, data.method, SIDE)
    assert calls[-1] == (cost, cost) and all(total == cost for _, total in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    again = metric.compute(dataclasses.replace(data, progress=None), resolved)
    for score, curves in first.items():
        np.testing.assert_array_equal(curves.curves, again[score].curves)


def test_detail_strips_show_each_models_map(setup) -> None:
    """eMPRT: the image, the trained map and the fully randomised map; sMPRT: the denoised
    map of the trained model and of each step, one image's worth of work."""
    bundle, images, targets = setup
    data = metric_input(bundle, images, targets, "saliency")
    for key, params, count in (("efficient_mprt", {}, 3), ("smooth_mprt", {"n_samples": 2, "max_steps": 2}, 3)):
        metric = get_metric(key)
        assert isinstance(metric, Metric) and metric.detail is not None
        strip = metric.detail(data, metric.resolve_params(params), 1)
        assert strip.images.shape == (count, SIDE, SIDE, 3) and len(strip.captions) == count
        assert strip.maps is not None and strip.maps.shape == (count, SIDE, SIDE)
    efficient = get_metric("efficient_mprt").detail(data, {"n_bins": 100, "seed": 0}, 1)  # type: ignore[union-attr]
    assert efficient.maps is not None
    np.testing.assert_array_equal(efficient.maps[1], data.maps[1])
    assert np.isnan(efficient.maps[0]).all() and not np.array_equal(efficient.maps[2], data.maps[1])
