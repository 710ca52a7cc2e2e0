"""IROF (Rieger & Hansen 2020), added through the metric registry: analytic cases on a
model that reads one patch, and the same numbers from the page, the CLI and a report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import explain
from explain.analyses import MetricAnalysis, prepare_images, run_directly
from explain.methods.registry import MethodSpec
from explain.metrics import MetricInput, get_metric
from explain.metrics.irof import irof_curve, superpixels
from tests.synthetic import bundle_of
from reports import build_section

SIZE = 32


class PatchReader(nn.Module):
    """Two classes; the logit difference is 8 x (mean red of rows 8:16, cols 8:16 - 0.5): only that patch matters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = 8 * (x[:, 0, 8:16, 8:16].mean(dim=(1, 2)) - 0.5)
        return torch.stack([evidence, -evidence], dim=1)


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 120, (SIZE, SIZE, 3)).astype(np.uint8)
    pixels[8:16, 8:16] = (250, 30, 30)  # the red patch the model reads
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def setup():
    bundle = bundle_of(PatchReader(), SIZE, 2)
    prepared = prepare_images(bundle, [explain.NamedImage(f"p{i}", photo(i)) for i in range(3)])
    return bundle, prepared


def maps_of(kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "oracle":
        maps = np.zeros((n, SIZE, SIZE), np.float32)
        maps[:, 8:16, 8:16] = 1.0
        return maps
    if kind == "anti":
        maps = np.ones((n, SIZE, SIZE), np.float32)
        maps[:, 8:16, 8:16] = 0.0
        return maps
    return rng.random((n, SIZE, SIZE)).astype(np.float32)


def test_the_oracle_map_loses_the_class_first_and_scores_highest(setup):
    bundle, prepared = setup
    metric = get_metric("irof")
    params = metric.resolve_params({"n_segments": 16, "compactness": 20.0})
    targets = torch.zeros(len(prepared), dtype=torch.long)
    scores = {}
    for kind in ("oracle", "random", "anti"):
        data = MetricInput(bundle, prepared.batch, maps_of(kind, len(prepared)), targets, MethodSpec(kind))
        scores[kind] = metric.compute(data, params)["irof"].score
    assert scores["oracle"] > scores["random"] > scores["anti"]
    data = MetricInput(bundle, prepared.batch, maps_of("oracle", len(prepared)), targets, MethodSpec("oracle"))
    fractions, lost = irof_curve(data, 0, params)
    assert lost[0] == 0.0 and fractions[-1] == 1.0
    labels = superpixels(bundle.to_display(prepared.batch[:1])[0], 16, 20.0)
    patch_segments = len(np.unique(labels[8:16, 8:16]))
    assert lost[patch_segments] > 0.45  # once the patch's superpixels are gone, the class has lost its evidence


def test_the_curve_matches_a_hand_computation(setup):
    """Step k of the curve: the model on the image with its k most relevant superpixels set to the mean colour."""
    bundle, prepared = setup
    params = get_metric("irof").resolve_params({"n_segments": 9, "compactness": 20.0})
    maps = maps_of("random", 1)
    data = MetricInput(bundle, prepared.batch[:1], maps, torch.zeros(1, dtype=torch.long), MethodSpec("random"))
    fractions, lost = irof_curve(data, 0, params)
    labels = superpixels(bundle.to_display(prepared.batch[:1])[0], 9, 20.0)
    means = [maps[0][labels == s].mean() for s in range(labels.max() + 1)]
    order = np.argsort(-np.array(means), kind="stable")
    x = prepared.batch[:1].clone()
    fill = x.mean(dim=(2, 3), keepdim=True)
    p0 = bundle.probabilities(x)[0, 0].item()
    for k in (1, 3, len(order)):
        mask = torch.from_numpy(np.isin(labels, order[:k]))
        perturbed = torch.where(mask, fill, x)
        expected = 1 - bundle.probabilities(perturbed)[0, 0].item() / p0
        assert lost[k] == pytest.approx(expected, abs=1e-6)


def test_irof_runs_as_an_analysis_and_its_report_section_reads_the_metric(setup):
    bundle, prepared = setup
    analysis = MetricAnalysis.of(
        "irof", prepared.subject(), (MethodSpec.of("gradcam" if bundle.cam_layer else "saliency"),), {"n_segments": 16}
    )
    result = run_directly(analysis, prepared)
    curves = result.curves["irof"]["saliency"]
    assert curves.num_units == 3 and 0.0 <= curves.score <= 1.0
    section = build_section(result)
    assert section.key == "irof" and [b.kind for b in section.blocks] == ["figure", "table"]
    assert "IROF: higher is better" in section.blocks[-1].caption
