"""The one metric executor (`explain.metrics.executor`): what the metric analyses and the
batch evaluation both run. Checked against calling the registered family directly, and
the analysis against the executor on the same maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import explain
from explain.analyses import MetricAnalysis, prepare_images, run_directly
from explain.analyses.maps import stored_maps
from explain.jobs import JobContext
from explain.methods.registry import MethodSpec
from explain.metrics import ComparisonInput, MetricInput, get_metric
from explain.metrics.executor import MetricBatch, PassCounter, every_curve, metric_passes, score_method
from tests.synthetic import PatchCNN, bundle_of, patch_image

SIZE = 32
METHODS = (MethodSpec.of("saliency"), MethodSpec.of("gradcam"))


@pytest.fixture(scope="module")
def prepared():
    bundle = bundle_of(PatchCNN(), SIZE, 2, cam_layer="features", linear_head="fc")
    images = [
        explain.NamedImage(
            f"p{i}", Image.fromarray(patch_image(SIZE, seed=i)[0].permute(1, 2, 0).mul(255).byte().numpy())
        )
        for i in range(3)
    ]
    return prepare_images(bundle, images)


@pytest.fixture(scope="module")
def maps(prepared):
    rng = np.random.default_rng(0)
    return {spec.ident: rng.random((len(prepared), SIZE, SIZE)).astype(np.float32) for spec in METHODS}


def batch_of(prepared) -> MetricBatch:
    targets = torch.ones(len(prepared), dtype=torch.long)
    return MetricBatch(prepared.bundle, prepared.batch, targets, tuple(prepared.digests))


def test_pass_counter_hands_on_passes_since_the_last_call():
    seen: list[int] = []
    counter = PassCounter(seen.append, passes_per_unit=3)
    for done in (1, 1, 4):
        counter(done, 4)
    assert seen == [3, 0, 9] and counter.reported == 12


def test_a_metric_scores_each_method_as_the_family_computes_it(prepared, maps):
    metric = get_metric("deletion_insertion")
    params = metric.resolve_params({"steps": 4})
    batch, advanced = batch_of(prepared), []
    got = list(every_curve(metric, params, batch, maps, METHODS, advanced.append))
    assert [(ident, key) for ident, key, _ in got] == [(s.ident, k) for s in METHODS for k in ("deletion", "insertion")]
    for spec in METHODS:
        direct = metric.compute(MetricInput(batch.bundle, batch.images, maps[spec.ident], batch.targets, spec,
                                            batch.digests), params)
        for ident, key, curves in got:
            if ident == spec.ident:
                np.testing.assert_array_equal(curves.curves, direct[key].curves)
    planned = metric_passes(metric, params, METHODS, len(prepared), SIZE)
    assert 0 < sum(advanced) <= planned
    assert score_method(metric, params, batch, maps["saliency"], METHODS[0]).passes == sum(advanced) / 2


def test_a_comparison_runs_once_and_scores_each_method_by_its_summary(prepared, maps):
    metric = get_metric("agreement")
    params = metric.resolve_params({})
    batch = batch_of(prepared)
    got = list(every_curve(metric, params, batch, maps, METHODS))
    pairs = metric.compute(ComparisonInput(batch.bundle, batch.images, maps, batch.targets, METHODS, batch.digests),
                           params)
    expected = [(ident, key, c) for key, p in pairs.items() for ident, c in p.per_method().items()]
    assert [(i, k) for i, k, _ in got] == [(i, k) for i, k, _ in expected]
    for (_, _, mine), (_, _, theirs) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(mine.curves, theirs.curves)


def test_the_metric_analysis_gives_what_the_executor_gives_on_its_maps(prepared):
    subject = prepared.subject()
    result = run_directly(MetricAnalysis.of("deletion_insertion", subject, METHODS, {"steps": 4}), prepared)
    maps = stored_maps(subject, METHODS, JobContext.detached())
    assert maps is not None
    batch = MetricBatch(prepared.bundle, prepared.batch, torch.as_tensor(subject.targets), tuple(prepared.digests))
    for ident, key, curves in every_curve(get_metric("deletion_insertion"), result.params, batch, maps, METHODS):
        np.testing.assert_array_equal(result.curves[key][ident].curves, curves.curves)
        np.testing.assert_array_equal(result.curves[key][ident].x, curves.x)
