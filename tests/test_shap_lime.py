"""SHAP and LIME methods and the grid-cell SHAP summary, on small models with known answers."""

from __future__ import annotations

import tempfile

import numpy as np
from PIL import Image
import pytest
import torch
from torch import nn

import explain
from explain.methods.shap_lime import TargetOutput, blur, lime_segment_weights, partition_shap_values
from explain.plots.shap import beeswarm_figure, cell_importance_figure, shap_image_figure
from explain.analyses.shap_grid import (
    beeswarm_offsets,
    cell_intensity,
    cell_values,
    grid_edges,
    summarize_grid,
)
from tests.synthetic import LinearClassifier, PatchCNN, bundle_of, patch_image
from tests.patience import generous

GRID = (4, 4)
CELL = (1, 2)  # rows 8:16, columns 16:24 of a 32 x 32 image
CELL_INDEX = CELL[0] * GRID[1] + CELL[1]


class OneCellModel(nn.Module):
    """Class 0 logit = g + g^2 / 2 with g = a weighted sum over grid cell CELL only;
    class 1 = -class 0. Nothing outside that cell can matter."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(3, 8, 8, generator=g) / 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cell = x[:, :, 8:16, 16:24]
        g = (cell * self.w).flatten(1).sum(1)
        f = g + 0.5 * g.pow(2)
        return torch.stack([f, -f], dim=1)


@pytest.fixture(scope="module")
def one_cell():
    bundle = bundle_of(OneCellModel(), 32, 2)
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    return bundle, images


@pytest.mark.parametrize("method, params", [
    ("shap_gradient", {"n_samples": 64}),
    pytest.param("shap_partition", {"max_evals": 400}, marks=pytest.mark.slow),
])
def test_only_the_cell_the_model_reads_carries_shap_and_ranks_first(one_cell, method, params):
    bundle, images = one_cell
    maps = explain.attribute(bundle, images, method, target=0, **params)
    display = bundle.to_display(images)
    summary = summarize_grid(maps, display, GRID, image_names=[f"img{i}" for i in range(5)], targets=[0] * 5)
    assert summary.order[0] == CELL_INDEX
    share = np.abs(maps[:, 8:16, 16:24]).sum() / np.abs(maps).sum()
    assert share > 0.98, share
    others = np.delete(summary.mean_abs, CELL_INDEX)
    assert others.max() < 0.02 * summary.mean_abs[CELL_INDEX]


@pytest.mark.slow
def test_partition_shap_values_add_up_to_f_x_minus_f_blurred():
    """Efficiency: sum of Owen values = f(x) - f(fully masked), the masked image being the blur."""
    bundle = bundle_of(PatchCNN(), 32, 2)
    x = patch_image(seed=2)
    values, fx, f_masked = partition_shap_values(bundle, x, 1, max_evals=300, blur_fraction=0.1)
    with torch.no_grad():
        assert fx == pytest.approx(float(bundle.model(x)[0, 1]), rel=1e-5)
        assert f_masked == pytest.approx(float(bundle.model(blur(x, 0.1))[0, 1]), rel=1e-4, abs=1e-5)
    assert values.shape == (32, 32)
    assert values.sum() == pytest.approx(fx - f_masked, rel=1e-4, abs=1e-5)
    # Through the registry (channels summed), the map keeps the same total.
    maps = explain.attribute(bundle, x, "shap_partition", target=1, max_evals=300, blur=0.1)
    assert maps.sum() == pytest.approx(fx - f_masked, rel=1e-4, abs=1e-5)


def test_gradient_shap_of_linear_model_is_w_times_x_minus_background():
    """Expected gradients of a linear logit with one background image b: w * (x - b), exactly."""
    model = LinearClassifier((3, 8, 8), classes=4)
    bundle = bundle_of(model, 8, 4)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    maps = explain.attribute(bundle, x, "shap_gradient", target=3, n_samples=8, blur=0.2)
    w = model.fc.weight[3].detach().view(3, 8, 8)
    expected = (w * (x - blur(x, 0.2))).sum(1).numpy()
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5)


def test_gradient_shap_is_seeded_and_leaves_global_random_state_alone():
    bundle = bundle_of(PatchCNN(), 32, 2)
    x = torch.cat([patch_image(seed=0), patch_image(seed=1)])
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = explain.attribute(bundle, x, "shap_gradient", target=1, n_samples=8, seed=5, local_smoothing=0.1)
    assert np.array_equal(np.random.get_state()[1], before)
    b = explain.attribute(bundle, x[1:], "shap_gradient", target=1, n_samples=8, seed=5, local_smoothing=0.1)
    np.testing.assert_allclose(a[1], b[0], rtol=1e-5, atol=1e-7)  # independent of batch mates
    c = explain.attribute(bundle, x, "shap_gradient", target=1, n_samples=8, seed=6, local_smoothing=0.1)
    assert not np.allclose(a, c)


def test_lime_top_superpixel_lies_on_the_evidence_patch():
    """PatchCNN's class-1 evidence is the red square; LIME's best superpixel must be on it.
    (With LIME's own default, hiding a superpixel by its mean colour, a uniform red
    superpixel is 'hidden' by the same red: that variant cannot see this evidence.)"""
    hide = "blurred image"
    bundle = bundle_of(PatchCNN(), 32, 2)
    patch = (4, 12, 18, 26)
    x = patch_image(patch=patch, seed=3)
    inside = np.zeros((32, 32), bool)
    inside[patch[0]:patch[1], patch[2]:patch[3]] = True
    segments, weights = lime_segment_weights(
        bundle, x, 1, n_samples=200, n_segments=16, compactness=10.0, hide=hide, blur_fraction=0.15,
        output="logit", seed=0,
    )
    best = max(weights, key=weights.get)
    top = segments == best
    assert (top & inside).sum() / top.sum() > 0.6
    maps = explain.attribute(bundle, x, "lime", target=1, n_samples=200, n_segments=16, hide=hide, blur=0.15, output="logit")
    assert inside[maps[0] == maps[0].max()].mean() > 0.6
    again = explain.attribute(bundle, x, "lime", target=1, n_samples=200, n_segments=16, hide=hide, blur=0.15, output="logit")
    np.testing.assert_array_equal(maps, again)  # seeded


def test_target_output_explains_one_column():
    model = LinearClassifier((3, 8, 8), classes=4)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(TargetOutput(model, 2)(x).numpy(), model(x)[:, 2:3].numpy(), rtol=1e-6)
        np.testing.assert_allclose(TargetOutput(model, 1, "probability")(x).numpy(),
                                   model(x).softmax(1)[:, 1:2].numpy(), rtol=1e-6)


# --- grid summary ------------------------------------------------------------------------

def test_cell_values_sum_pixels_and_intensity_is_mean_in_0_1():
    maps = np.arange(2 * 6 * 6, dtype=np.float64).reshape(2, 6, 6)
    values = cell_values(maps, (2, 3))
    assert values.shape == (2, 6)
    assert values[0, 0] == maps[0, :3, :2].sum() and values[1, 5] == maps[1, 3:, 4:].sum()
    np.testing.assert_allclose(values.sum(1), maps.reshape(2, -1).sum(1))  # additivity kept
    images = np.zeros((1, 6, 6, 3), np.uint8)
    images[0, :3, :2] = 255
    np.testing.assert_allclose(cell_intensity(images, (2, 3))[0], [1, 0, 0, 0, 0, 0])
    assert list(grid_edges(224, 7)) == [0, 32, 64, 96, 128, 160, 192, 224]
    with pytest.raises(ValueError):
        grid_edges(4, 5)


def test_summary_orders_cells_by_mean_absolute_value():
    maps = np.zeros((3, 4, 4))
    maps[:, 2:, 2:] = [[[-1.0]], [[1.0]], [[-1.0]]]  # cell r2c2: |4| in every image
    maps[0, :2, :2] = 2.0  # cell r1c1: 8 in one image -> mean |.| 8/3 < 4
    images = np.full((3, 4, 4, 3), 128, np.uint8)
    s = summarize_grid(maps, images, (2, 2), image_names=["a", "b", "c"], targets=[1, 1, 2])
    assert list(s.order) == [3, 0, 1, 2]
    assert s.ranked(2) == [("r2c2", 4.0), ("r1c1", pytest.approx(8 / 3))]
    np.testing.assert_allclose(s.values[:, 3], [-4, 4, -4])
    assert s.to_dict()["labels"] == ["r1c1", "r1c2", "r2c1", "r2c2"]


def test_beeswarm_offsets_stack_equal_values_and_stay_in_band():
    offsets = beeswarm_offsets(np.array([1.0, 1.0, 1.0, 5.0]), width=0.4)
    assert np.abs(offsets).max() == pytest.approx(0.4)
    assert len(set(offsets[:3].round(6))) == 3 and offsets[3] == 0
    np.testing.assert_array_equal(offsets, beeswarm_offsets(np.array([1.0, 1.0, 1.0, 5.0]), width=0.4))


def test_figures_carry_values_and_escaped_names():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 16, 16))
    images = rng.integers(0, 255, size=(3, 16, 16, 3), dtype=np.uint8)
    s = summarize_grid(maps, images, (4, 4), image_names=["<b>x</b>", "b", "c"], targets=[0, 0, 0],
                       target_names=["cat"] * 3)
    bees = beeswarm_figure(s, max_features=5)
    assert len(bees.data[0].x) == 3 * 5
    assert "&lt;b&gt;x&lt;/b&gt;" in bees.data[0].text[0] and "<b>x" not in bees.data[0].text[0]
    np.testing.assert_allclose(sorted(bees.data[0].x[:3]), sorted(s.values[:, s.order[0]]))
    heat = cell_importance_figure(s, images[0])
    np.testing.assert_allclose(heat.data[-1].z, s.mean_abs_grid())
    fig = shap_image_figure(images[0], maps[:2], ["cat", "dog"], max_side=8)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 2 and heatmaps[0].zmin == -heatmaps[0].zmax  # shared symmetric scale
    assert np.asarray(heatmaps[0].z).shape == (8, 8)


def test_shap_summary_explains_each_top_class_and_reuses_stored_maps(monkeypatch):
    """Per plotted image the maps of its top-k classes equal direct calls; a second run
    (a fresh process's runner, memory cache emptied) only reads the store."""
    from explain.analyses import ShapSummary, prepare_images, run_directly
    from explain.analyses import maps as maps_module
    from explain.jobs import JobContext, JobRunner, JobStore
    from explain.methods.cache import default_cache
    from explain.methods.registry import MethodSpec

    bundle = bundle_of(LinearClassifier((3, 8, 8), classes=4), 8, 4)
    rng = np.random.default_rng(0)
    images = [explain.NamedImage(f"im{i}", Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))) for i in range(3)]
    prepared = prepare_images(bundle, images)
    analysis = ShapSummary(prepared.subject(), MethodSpec.of("shap_gradient", {"n_samples": 4}), top_k=2, plotted=2)
    store = JobStore(tempfile.mkdtemp())
    ctx = JobContext(store.parts(analysis.key), store.shared)
    result = run_directly(analysis, prepared, ctx)
    assert result.per_class.shape == (2, 2, 8, 8) and result.maps.shape == (3, 8, 8)
    direct = explain.attribute(bundle, prepared.batch[:2], "shap_gradient", target=result.classes[:, 1].tolist(), n_samples=4)
    np.testing.assert_allclose(result.per_class[:, 1], direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.classes[:, 0], [row[0][0] for row in prepared.top5[:2]])
    default_cache().clear()
    calls = []
    monkeypatch.setattr(maps_module, "attribute", lambda *a, **k: calls.append(a))
    again = JobRunner(store).submit(analysis, prepared)
    assert again.wait(generous(6)) and again.state == "done", again.error
    assert not calls
    np.testing.assert_array_equal(again.result.per_class, result.per_class)
