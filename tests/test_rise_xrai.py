"""RISE and XRAI: known answers on small models, and XRAI against PAIR's own pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import saliency.core as pair
import torch
from torch import nn

import explain
from explain.methods.rise import RiseMasks
from tests.synthetic import PatchCNN, bundle_of, patch_image
from tests.patience import generous

REGION = (4, 12, 18, 26)


class RegionScore(nn.Module):
    """Class 1's logit grows with the mean of the image inside REGION, class 0's is 0:
    on an all-ones image, RISE's masked probability grows with how much of REGION a
    mask keeps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r0, r1, c0, c1 = REGION
        score = 10 * x[:, :, r0:r1, c0:c1].mean(dim=(1, 2, 3)) - 5
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_rise_with_every_cell_kept_is_flat_at_the_class_probability():
    """p = 1: every mask is all ones, so the map is N f_c(x) / (N * 1) = f_c(x) everywhere."""
    bundle = bundle_of(PatchCNN(), 32, 2)
    x = torch.cat([patch_image(seed=0), patch_image(seed=1)])
    maps = explain.attribute(bundle, x, "rise", target=1, n_masks=20, p=1.0)
    probability = bundle.probabilities(x)[:, 1].numpy()
    np.testing.assert_allclose(maps, np.broadcast_to(probability[:, None, None], maps.shape), rtol=1e-6)


def test_rise_masks_are_seeded_smooth_and_kept_with_probability_p():
    masks = RiseMasks(400, (32, 32), grid=4, p=0.3, seed=5)
    first = masks.chunk(0, 400, torch.device("cpu"))
    assert first.shape == (400, 1, 32, 32) and first.min() >= 0 and first.max() <= 1 + 1e-6
    assert float(first.mean()) == pytest.approx(0.3, abs=0.03)
    # Seeded, and chunking never changes a mask.
    again = RiseMasks(400, (32, 32), grid=4, p=0.3, seed=5)
    torch.testing.assert_close(torch.cat([again.chunk(0, 150, torch.device("cpu")), again.chunk(150, 400, torch.device("cpu"))]), first)
    assert not torch.equal(RiseMasks(400, (32, 32), grid=4, p=0.3, seed=6).chunk(0, 400, torch.device("cpu")), first)


def test_rise_peaks_on_the_region_the_model_reads_and_ignores_the_batching():
    x = torch.ones(1, 3, 32, 32)
    small = bundle_of(RegionScore(), 32, 2, batch_size=7)
    large = bundle_of(RegionScore(), 32, 2, batch_size=64)
    maps = explain.attribute(small, x, "rise", target=1, n_masks=600, grid=4, seed=3)
    np.testing.assert_allclose(maps, explain.attribute(large, x, "rise", target=1, n_masks=600, grid=4, seed=3), rtol=1e-5, atol=1e-6)
    m = maps[0]
    r0, r1, c0, c1 = REGION
    row, col = np.unravel_index(np.argmax(m), m.shape)
    assert r0 <= row < r1 and c0 <= col < c1
    outside = np.ones(m.shape, bool)
    outside[r0:r1, c0:c1] = False
    assert m[r0:r1, c0:c1].mean() > m[outside].mean() + 0.1


@pytest.fixture(scope="module")
def patch_bundle():
    return bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")


def pair_gradients(bundle: explain.ModelBundle, target: int):
    """PAIR's call_model_function: gradients of the target logit for a batch of HWC images."""

    def call(batch, call_model_args=None, expected_keys=None):
        images = torch.tensor(np.asarray(batch), dtype=torch.float32).permute(0, 3, 1, 2).requires_grad_(True)
        (grad,) = torch.autograd.grad(bundle.model(images)[:, target].sum(), images)
        return {pair.base.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).numpy()}

    return call


def test_xrai_equals_pair_xrai_on_the_same_attribution(patch_bundle):
    """Our XRAI is saliency.core.XRAI fed our Integrated Gradients: given the same IG
    attribution (Captum, black and white baselines, averaged), PAIR's XRAI gives the
    same map."""
    from captum.attr import IntegratedGradients

    x = torch.cat([patch_image(seed=0), patch_image(patch=(20, 28, 2, 10), seed=1)])
    ours = explain.attribute(patch_bundle, x, "xrai", target=1, n_steps=16)
    ig = IntegratedGradients(patch_bundle.model)
    attribution = torch.stack([
        ig.attribute(x, baselines=torch.full_like(x, value), target=1, n_steps=16, method="gausslegendre") for value in (0.0, 1.0)
    ]).mean(0)
    for image, attr, mine in zip(x, attribution, ours):
        theirs = pair.XRAI().GetMask(image.permute(1, 2, 0).double().numpy(), None, base_attribution=attr.permute(1, 2, 0).double().numpy())
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-9)


def test_xrai_agrees_with_pair_xrai_computing_its_own_integrated_gradients(patch_bundle):
    """PAIR's whole pipeline (its own 400-step Riemann IG through our gradients, black
    and white baselines) and ours (Gauss-Legendre IG, 64 steps) rank the regions the
    same way; PatchCNN is piecewise linear, so both IGs converge to the same values."""
    x = patch_image()
    ours = explain.attribute(patch_bundle, x, "xrai", target=1, n_steps=64)[0]
    image = x[0].permute(1, 2, 0).double().numpy()
    theirs = pair.XRAI().GetMask(
        image, pair_gradients(patch_bundle, 1), baselines=[np.zeros_like(image), np.ones_like(image)], batch_size=64,
        extra_parameters=pair.XRAIParameters(steps=400),
    )
    np.testing.assert_array_equal(np.argsort(ours.ravel(), kind="stable"), np.argsort(theirs.ravel(), kind="stable"))
    np.testing.assert_allclose(ours, theirs, rtol=1e-2, atol=1e-5)


def test_xrai_highlights_the_evidence_patch(patch_bundle):
    patches = [(4, 12, 18, 26), (20, 28, 2, 10)]
    x = torch.cat([patch_image(patch=p, seed=i) for i, p in enumerate(patches)])
    for algorithm in ("full", "fast"):
        maps = explain.attribute(patch_bundle, x, "xrai", target=1, n_steps=16, algorithm=algorithm)
        for m, (r0, r1, c0, c1) in zip(maps, patches):
            outside = np.ones(m.shape, bool)
            outside[r0:r1, c0:c1] = False
            assert m[r0:r1, c0:c1].mean() > 3 * m[outside].mean(), algorithm


def test_xrai_is_default_selected_on_the_sic_aic_page_and_new_methods_reach_the_metric_pages():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from tests.apptest import click, run_until_idle, shown_result

    def app() -> AppTest:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=generous(30))
        at.session_state["custom_bundle"] = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
        at.session_state["samples"] = ["chelsea", "coffee"]
        return at

    at = app()
    at.switch_page("pages/pic.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="pic:methods").value[0] == "xrai"
    at = app()
    at.session_state["methods"] = ["lrp", "rise", "scorecam"]
    at.session_state["param:rise:n_masks"] = 50
    at.switch_page("pages/deletion_insertion.py").run()
    run_until_idle(click(at, "Run"))
    result = shown_result(at, "deletion_insertion")
    assert [s.key for s in result.analysis.methods] == ["lrp", "rise", "scorecam"]
    assert all(np.isfinite(c.score) for c in result.curves["deletion"].values())
