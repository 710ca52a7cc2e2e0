"""The one way a registered metric runs on maps, for the metric analyses (pages, report
CLI) and the batch evaluation alike.

A `Metric` scores one method at a time (`score_method`); a `Comparison` runs once over
every method's maps (`compare_methods`) and scores each method by its summary
(`summaries`: its mean agreement with the others); `every_curve` does whichever the
family asks. Progress is counted in model passes, handed to the caller as the passes
done since its last report (`PassCounter`), so one ETA covers maps and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..methods.registry import MethodSpec
from ..models.bundle import ModelBundle
from .base import Curves, Pairs
from .registry import Comparison, ComparisonInput, Metric, MetricFamily, MetricInput

Advance = Callable[[int], None]  # model passes done since the last call
MetricParams = Mapping[str, object]


@dataclass(frozen=True, eq=False)
class MetricBatch:
    """What a metric reads besides the maps: the model, the batch (N, C, H, W), the
    explained class of each image (N,), the images' content digests and, where the data
    has ground truth, its masks (N, H, W) in the model's view."""

    bundle: ModelBundle
    images: torch.Tensor
    targets: torch.Tensor
    digests: tuple[str, ...]
    masks: np.ndarray | None = None


class PassCounter:
    """A `(done, total)` progress callback turned into passes done since the last call
    (`done` units of `passes_per_unit` passes each) for `advance`; `reported` is the sum
    handed on so far."""

    def __init__(self, advance: Advance | None, passes_per_unit: int = 1) -> None:
        self.advance = advance
        self.passes_per_unit = passes_per_unit
        self.done = 0
        self.reported = 0

    def __call__(self, done: int, total: int) -> None:
        passes = (done - self.done) * self.passes_per_unit
        self.done = done
        self.reported += passes
        if self.advance is not None:
            self.advance(passes)


@dataclass(frozen=True, eq=False)
class MethodCurves:
    """One method's curves by score key, and the model passes its run reported."""

    method: MethodSpec
    curves: dict[str, Curves]
    passes: int


def metric_passes(metric: MetricFamily, params: MetricParams, methods: Sequence[MethodSpec], n: int, size: int) -> int:
    """Model passes `metric` costs on `n` images of side `size`: a comparison once for
    all methods, any other family once per method (with the maps it recomputes)."""
    if isinstance(metric, Comparison):
        return metric.passes(params, n)
    if isinstance(metric, Metric):
        return sum(metric.cost(params, n, spec, size) for spec in methods)
    raise TypeError(f"{metric.label}: a metric family is a Metric or a Comparison")


def score_method(metric: Metric, params: MetricParams, batch: MetricBatch, maps: np.ndarray, method: MethodSpec,
                 advance: Advance | None = None) -> MethodCurves:
    """`metric` on one method's maps (N, H, W)."""
    counter = PassCounter(advance)
    data = MetricInput(batch.bundle, batch.images, maps, batch.targets, method, batch.digests, counter, batch.masks)
    return MethodCurves(method, metric.compute(data, params), counter.reported)


def compare_methods(metric: Comparison, params: MetricParams, batch: MetricBatch, maps: Mapping[str, np.ndarray],
                    methods: Sequence[MethodSpec], advance: Advance | None = None) -> dict[str, Pairs]:
    """`metric` once over every method's maps (`maps[ident]`, in the order of `methods`)."""
    data = ComparisonInput(batch.bundle, batch.images, maps, batch.targets, tuple(methods), batch.digests,
                           PassCounter(advance))
    return metric.compute(data, params)


def summaries(pairs: Mapping[str, Pairs]) -> dict[str, dict[str, Curves]]:
    """A comparison's per-method curves (each method's mean agreement with the others) by score key."""
    return {key: p.per_method() for key, p in pairs.items()}


def every_curve(metric: MetricFamily, params: MetricParams, batch: MetricBatch, maps: Mapping[str, np.ndarray],
                methods: Sequence[MethodSpec], advance: Advance | None = None) -> Iterator[tuple[str, str, Curves]]:
    """(method ident, score key, curves) for every method and score under `metric`,
    method by method for a `Metric`, score by score for a comparison (its summaries)."""
    if isinstance(metric, Comparison):
        for key, by_method in summaries(compare_methods(metric, params, batch, maps, methods, advance)).items():
            for ident, curves in by_method.items():
                yield ident, key, curves
        return
    if not isinstance(metric, Metric):
        raise TypeError(f"{metric.label}: a metric family is a Metric or a Comparison")
    for spec in methods:
        for key, curves in score_method(metric, params, batch, maps[spec.ident], spec, advance).curves.items():
            yield spec.ident, key, curves
