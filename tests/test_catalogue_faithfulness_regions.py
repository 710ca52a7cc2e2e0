"""Faithfulness II (region perturbation, selectivity, sufficiency, sensitivity-N) against
Quantus 0.6.0 on the same tiny seeded CNN, images and maps, the documented differences,
the closed forms, and the passes each family declares against those it makes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import explain
from explain.analyses import MetricAnalysis, prepare_images, run_directly
from explain.methods.registry import MethodSpec
from explain.metrics import MetricInput, get_metric
from explain.metrics.patch_removal import patch_labels
from explain.metrics.registry import FAITHFULNESS_PAGE, Metric
from explain.metrics.substrates import blur
from reports import build_section
from tests.synthetic import bundle_of

quantus = pytest.importorskip("quantus")

SIDE = 16
GRID = 4  # Quantus's patch_size = SIDE / GRID = 4
N = 5
TOLERANCE = 1e-6  # the same float32 model on the same inputs; float64 differences of float32 probabilities
QUIET = {"disable_warnings": True}


def tiny_cnn(side: int = SIDE, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * side * side, classes),
                         ).eval()


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, explain.ModelBundle, torch.Tensor, np.ndarray, torch.Tensor]:
    """A seeded CNN (identity normalisation: "black" is pixel value 0), images, signed
    continuous maps (no tied patches) and mixed targets."""
    model = tiny_cnn()
    rng = np.random.default_rng(0)
    images = torch.tensor(rng.random((N, 3, SIDE, SIDE)), dtype=torch.float32)
    maps = rng.normal(size=(N, SIDE, SIDE))
    return model, bundle_of(model, SIDE, 3), images, maps, torch.tensor([0, 1, 2, 1, 0])


def ours(key: str, bundle: explain.ModelBundle, images: torch.Tensor, maps: np.ndarray, targets: torch.Tensor,
         **params: Any) -> dict:
    metric = get_metric(key)
    assert isinstance(metric, Metric)
    data = MetricInput(bundle, images, maps, targets, MethodSpec.of("saliency"))
    return metric.compute(data, metric.resolve_params(params))


def theirs(metric: Any, model: nn.Module, images: torch.Tensor, maps: np.ndarray, targets: torch.Tensor,
           **kwargs: Any) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric(model=model, x_batch=images.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None].copy(),
                     device="cpu", **kwargs)
    return np.asarray(out, dtype=np.float64)


def quantus_auc(curves: np.ndarray) -> np.ndarray:
    """Quantus's `calculate_auc` (np.trapz, dx = 1; `np.trapz` is gone from NumPy 2, so here by hand)."""
    return np.trapezoid(curves, dx=1, axis=-1)


# ---------------------------------------------------------------------- region perturbation, selectivity
@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_agrees_with_quantus(setup, order: str) -> None:
    model, bundle, images, maps, targets = setup
    curves = ours("region_perturbation", bundle, images, maps, targets, grid=GRID, regions=6, fill="black")
    mine = curves[f"region_perturbation_{order}"]
    reference = theirs(quantus.RegionPerturbation(patch_size=SIDE // GRID, order=order, regions_evaluation=6,
                                                  perturb_baseline=0.0, **QUIET), model, images, maps, targets)
    assert reference.shape == (N, 6) and np.ptp(reference) > 0.01  # the curves move: the comparison means something
    np.testing.assert_allclose(mine.curves, reference, atol=TOLERANCE)
    np.testing.assert_allclose(mine.x, np.arange(1, 7) / GRID**2)
    np.testing.assert_allclose(mine.aucs * GRID**2, quantus_auc(reference), atol=TOLERANCE)  # the score: AUC / K


def test_selectivity_agrees_with_quantus(setup) -> None:
    model, bundle, images, maps, targets = setup
    mine = ours("selectivity", bundle, images, maps, targets, grid=GRID, fill="black")["selectivity"]
    reference = theirs(quantus.Selectivity(patch_size=SIDE // GRID, perturb_baseline=0.0, **QUIET), model, images,
                       maps, targets)
    assert reference.shape == (N, GRID**2)
    np.testing.assert_allclose(mine.curves, reference, atol=TOLERANCE)
    np.testing.assert_allclose(mine.aucs * GRID**2, quantus_auc(reference), atol=TOLERANCE)


def substrate_perturbation(substrate: np.ndarray):
    """Quantus perturb_func filling the perturbed indices from `substrate` (N, C*H*W)."""

    def perturb(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
        out = arr.copy()
        rows = np.arange(len(arr))[:, None]
        out[rows, indices] = substrate[rows, indices]
        return out

    return perturb


def test_a_non_constant_substrate_agrees_with_quantus_given_the_same_fill(setup) -> None:
    """The blur substrate, handed to Quantus as its perturb_func: the same curves."""
    model, bundle, images, maps, targets = setup
    mine = ours("region_perturbation", bundle, images, maps, targets, grid=GRID, regions=5, fill="blur")
    fill = blur(images).numpy().reshape(N, -1)
    reference = theirs(quantus.RegionPerturbation(patch_size=SIDE // GRID, regions_evaluation=5,
                                                  perturb_func=substrate_perturbation(fill), **QUIET),
                       model, images, maps, targets)
    np.testing.assert_allclose(mine["region_perturbation_morf"].curves, reference, atol=TOLERANCE)


def test_the_patch_grid_is_quantus_s_where_the_side_is_a_multiple_and_even_elsewhere() -> None:
    """On 16 px with 4 per side: 4 x 4 blocks of 4 px (Quantus's patch_size 4). On 10 px:
    still 4 x 4 patches (rows of 2 or 3 px), where Quantus's patch_size 3 would pad the
    image to 12 px and cut 16 patches of uneven visible size, and patch_size 2 would cut 25."""
    labels = patch_labels(SIDE, SIDE, GRID).reshape(SIDE, SIDE)
    expected = (np.arange(SIDE)[:, None] // 4) * GRID + np.arange(SIDE)[None, :] // 4
    np.testing.assert_array_equal(labels, expected)
    uneven = patch_labels(10, 10, GRID).reshape(10, 10)
    assert len(np.unique(uneven)) == GRID**2
    assert sorted(set(np.bincount(uneven[:, 0] // GRID))) == [2, 3]


class PatchReader(nn.Module):
    """Two classes; the logit difference reads the mean red of the top-left 4 x 4 patch only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = 8 * (x[:, 0, :4, :4].mean(dim=(1, 2)) - 0.5)
        return torch.stack([evidence, -evidence], dim=1)


def test_known_answers_on_a_model_that_reads_one_patch() -> None:
    """The map on the read patch: MoRF loses the whole drop at the first patch and keeps it,
    LeRF loses nothing until the last of the K patches, selectivity falls to its floor at once."""
    bundle = bundle_of(PatchReader(), SIDE, 2)
    images = torch.full((2, 3, SIDE, SIDE), 0.4)
    images[:, 0, :4, :4] = 1.0
    maps = np.zeros((2, SIDE, SIDE))
    maps[:, :4, :4] = 1.0
    maps[:, 4:, :] = np.random.default_rng(0).random((2, SIDE - 4, SIDE)) * 0.1  # other patches below it, no ties
    targets = torch.zeros(2, dtype=torch.long)
    p0 = bundle.probabilities(images)[0, 0].item()
    gone = torch.sigmoid(torch.tensor(2 * 8 * (0.0 - 0.5))).item()  # the patch black: p of class 0
    region = ours("region_perturbation", bundle, images, maps, targets, grid=GRID, regions=GRID**2, fill="black")
    np.testing.assert_allclose(region["region_perturbation_morf"].curves, p0 - gone, atol=1e-6)
    lerf = region["region_perturbation_lerf"].curves
    np.testing.assert_allclose(lerf[:, :-1], 0.0, atol=1e-7)
    np.testing.assert_allclose(lerf[:, -1], p0 - gone, atol=1e-6)
    selectivity = ours("selectivity", bundle, images, maps, targets, grid=GRID, fill="black")["selectivity"]
    np.testing.assert_allclose(selectivity.curves, gone, atol=1e-6)


# ---------------------------------------------------------------------- sufficiency
def clustered_maps(rng: np.random.Generator, groups: int, per_group: int, side: int = SIDE) -> np.ndarray:
    """Maps near one of `groups` prototypes each: close within a group, far between."""
    prototypes = rng.normal(size=(groups, side, side)) * 3
    return np.concatenate([p + 0.2 * rng.normal(size=(per_group, side, side)) for p in prototypes])


def test_sufficiency_agrees_with_quantus_where_every_map_has_a_close_one(setup) -> None:
    model, bundle, _, _, _ = setup
    rng = np.random.default_rng(3)
    maps = clustered_maps(rng, 3, 3)
    images = torch.tensor(rng.random((9, 3, SIDE, SIDE)), dtype=torch.float32)
    targets = torch.zeros(9, dtype=torch.long)
    for threshold in (0.6, 0.9):
        mine = ours("sufficiency", bundle, images, maps, targets, threshold=threshold)["sufficiency"]
        reference = theirs(quantus.Sufficiency(threshold=threshold, **QUIET), model, images, maps, targets)
        assert mine.kept == tuple(range(9))
        np.testing.assert_allclose(mine.aucs, reference, atol=1e-12)
    predictions = bundle.probabilities(images).argmax(1).numpy()
    assert 0 < np.mean(reference) < 1 and len(set(predictions)) > 1  # some agree, some do not


def test_sufficiency_skips_an_isolated_map_where_quantus_scores_it_zero(setup) -> None:
    model, bundle, _, _, _ = setup
    rng = np.random.default_rng(4)
    maps = np.concatenate([clustered_maps(rng, 2, 3), 40 * rng.normal(size=(1, SIDE, SIDE))])
    images = torch.tensor(rng.random((7, 3, SIDE, SIDE)), dtype=torch.float32)
    targets = torch.zeros(7, dtype=torch.long)
    mine = ours("sufficiency", bundle, images, maps, targets, threshold=0.3)["sufficiency"]
    reference = theirs(quantus.Sufficiency(threshold=0.3, **QUIET), model, images, maps, targets)
    assert [s.index for s in mine.skipped] == [6] and "no other image's map" in mine.skipped[0].reason
    assert reference[6] == 0.0
    np.testing.assert_allclose(mine.aucs, reference[:6], atol=1e-12)


def test_sufficiency_leaves_out_pixels_equal_in_every_map_where_quantus_gets_nan_distances(setup) -> None:
    model, bundle, _, _, _ = setup
    rng = np.random.default_rng(5)
    maps = clustered_maps(rng, 2, 3)
    images = torch.tensor(rng.random((6, 3, SIDE, SIDE)), dtype=torch.float32)
    targets = torch.zeros(6, dtype=torch.long)
    images[:, :, 0, :] = 0.0
    flat_border = maps.copy()
    flat_border[:, 0, :] = 0.0  # a row every map leaves at zero (a CAM's border)
    mine = ours("sufficiency", bundle, images, flat_border, targets)["sufficiency"]
    # Quantus on the rows that vary: the images without their (zero) top row, padded back for the model.
    padded = nn.Sequential(nn.ZeroPad2d((0, 0, 1, 0)), model).eval()
    inner = theirs(quantus.Sufficiency(**QUIET), padded, images[:, :, 1:], flat_border[:, 1:], targets)
    broken = theirs(quantus.Sufficiency(**QUIET), model, images, flat_border, targets)
    np.testing.assert_allclose(mine.aucs, inner, atol=1e-12)
    assert (broken == 0).all() and (mine.aucs > 0).any()


# ---------------------------------------------------------------------- sensitivity-N
def linear_setup(side: int = 12) -> tuple[nn.Module, explain.ModelBundle, torch.Tensor, torch.Tensor, np.ndarray]:
    """A linear classifier and its Gradient x Input maps from the product's own method."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * side * side, 3)).eval()
    bundle = bundle_of(model, side, 3)
    rng = np.random.default_rng(6)
    images = torch.tensor(rng.random((6, 3, side, side)), dtype=torch.float32)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    maps = explain.attribute(bundle, images, "input_x_gradient", targets.tolist()).astype(np.float64)
    return model, bundle, images, targets, maps


def test_sensitivity_n_is_one_at_every_n_for_gradient_x_input_on_a_linear_model() -> None:
    """Ancona et al.'s closed form; Quantus's SensitivityN, which ranks and accumulates
    features and correlates across the batch, gives 1 only at its first step."""
    model, bundle, images, targets, maps = linear_setup()
    curves = ours("sensitivity_n", bundle, images, maps, targets)["sensitivity_n"]
    assert curves.num_units == 6 and curves.curves.shape == (6, 6)
    np.testing.assert_allclose(curves.curves, 1.0, atol=1e-6)
    assert curves.x_labels[0] == "1" and int(curves.x_labels[-1]) == int(0.8 * 144)
    reference = theirs(quantus.SensitivityN(features_in_step=3, perturb_baseline=0.0, return_aggregate=False,
                                            **QUIET), model, images, maps, targets, softmax=False)
    assert reference[0] == pytest.approx(1.0, abs=1e-6) and np.mean(reference) < 0.95


def test_sensitivity_n_is_reproducible_and_an_image_s_curve_ignores_its_batch_mates(setup) -> None:
    _, bundle, images, maps, targets = setup
    together = ours("sensitivity_n", bundle, images, maps, targets, output="probability", seed=3)["sensitivity_n"]
    again = ours("sensitivity_n", bundle, images, maps, targets, output="probability", seed=3)["sensitivity_n"]
    alone = ours("sensitivity_n", bundle, images[2:3], maps[2:3], targets[2:3], output="probability",
                 seed=3)["sensitivity_n"]
    other = ours("sensitivity_n", bundle, images, maps, targets, output="probability", seed=4)["sensitivity_n"]
    np.testing.assert_array_equal(together.curves, again.curves)
    np.testing.assert_allclose(alone.curves[0], together.curves[2], atol=1e-9)
    assert not np.allclose(other.curves, together.curves)
    assert np.abs(together.curves).max() <= 1.0 + 1e-9


def test_sensitivity_n_skips_a_constant_map_with_a_reason(setup) -> None:
    _, bundle, images, maps, targets = setup
    maps = maps.copy()
    maps[1] = 0.5
    curves = ours("sensitivity_n", bundle, images, maps, targets)["sensitivity_n"]
    assert [s.index for s in curves.skipped] == [1] and "constant map" in curves.skipped[0].reason
    assert curves.kept == (0, 2, 3, 4)


# ---------------------------------------------------------------------- cost, page, analysis, report
@pytest.mark.parametrize("key,params", [
    ("region_perturbation", {"grid": GRID, "regions": 6}),
    ("selectivity", {"grid": GRID}),
    ("sufficiency", {}),
    ("sensitivity_n", {"sizes": 4, "samples": 5}),
])
def test_each_family_makes_the_passes_it_declares_on_the_faithfulness_page(setup, key: str, params: dict) -> None:
    _, bundle, images, maps, targets = setup
    metric = get_metric(key)
    assert isinstance(metric, Metric) and metric.page == FAITHFULNESS_PAGE
    resolved = metric.resolve_params(params)
    seen: list[tuple[int, int]] = []
    data = MetricInput(bundle, images, maps, targets, MethodSpec.of("saliency"),
                       progress=lambda done, total: seen.append((done, total)))
    metric.compute(data, resolved)
    declared = metric.passes(resolved, N)
    dones = [done for done, _ in seen]
    assert seen[-1] == (declared, declared) and dones == sorted(dones)
    assert metric.maps_per_image(resolved) == 0


def test_region_perturbation_runs_as_an_analysis_with_its_detail_and_report_section() -> None:
    bundle = bundle_of(tiny_cnn(), SIDE, 3)
    rng = np.random.default_rng(8)
    photos = [explain.NamedImage(f"p{i}", _photo(rng)) for i in range(3)]
    prepared = prepare_images(bundle, photos)
    analysis = MetricAnalysis.of("region_perturbation", prepared.subject(), (MethodSpec.of("saliency"),),
                                 {"grid": GRID, "regions": 4})
    result = run_directly(analysis, prepared)
    morf = result.curves["region_perturbation_morf"]["saliency"]
    assert morf.num_units == 3 and np.isfinite(morf.score)
    section = build_section(result)
    assert section.key == "region_perturbation" and section.blocks
    metric = get_metric("region_perturbation")
    assert isinstance(metric, Metric) and metric.detail is not None
    maps = explain.attribute(bundle, prepared.batch, "saliency", [0, 0, 0])
    strip = metric.detail(MetricInput(bundle, prepared.batch, maps, torch.zeros(3, dtype=torch.long),
                                      MethodSpec.of("saliency")), metric.resolve_params({"grid": GRID}), 0)
    assert strip.images.shape == (6, SIDE, SIDE, 3) and strip.captions[0].startswith("0 of 16 patches")


def _photo(rng: np.random.Generator):
    from PIL import Image

    return Image.fromarray(rng.integers(0, 255, (SIDE, SIDE, 3)).astype(np.uint8))
