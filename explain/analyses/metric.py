"""Any registered metric as an analysis: maps first (reused from the store where they
exist), then the metric per method, each method's curves stored as soon as they are
done (a killed run resumes with them) and yielded as a partial result.

One result type for every metric (`MetricResult`): curves per score and method, one
figure per score, one table, one report section, all driven by the metric's
`MetricInfo`s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ..jobs.runner import JobContext
from ..methods.registry import MethodSpec
from ..metrics.base import Curves, Skipped
from ..metrics.registry import Metric, MetricInput, Strip, get_metric
from ..models.bundle import ModelCard
from .attribution import check_inputs, load_card, store_subject_views
from .base import Analysis, register_analysis
from .inputs import ImagesView, PreparedImages, Subject, load_images
from .maps import iter_maps, maps_passes


def curves_part_name(spec: MethodSpec) -> str:
    return "curves-" + hashlib.sha1(spec.ident.encode("utf-8")).hexdigest()[:24]


def store_curves(parts, name: str, curves: Mapping[str, Curves]) -> None:
    """One method's curves of every score: arrays in one `.npz`, the rest as JSON."""
    arrays, record = {}, {}
    for key, c in curves.items():
        arrays[f"{key}.x"] = c.x
        arrays[f"{key}.curves"] = c.curves
        record[key] = {"method": c.method, "kept": list(c.kept), "skipped": [[s.index, s.reason] for s in c.skipped],
                       "extra": c.extra}
    parts.put_arrays(name, arrays)
    parts.put_json(name, record)


def load_curves(parts, name: str, metric: Metric) -> dict[str, Curves] | None:
    arrays, record = parts.get_arrays(name), parts.get_json(name)
    if arrays is None or record is None:
        return None
    try:
        return {
            info.key: Curves(info, record[info.key]["method"], arrays[f"{info.key}.x"], arrays[f"{info.key}.curves"],
                             tuple(record[info.key]["kept"]), tuple(Skipped(int(i), str(r)) for i, r in record[info.key]["skipped"]),
                             dict(record[info.key].get("extra", {})))
            for info in metric.scores
        }
    except (KeyError, ValueError, TypeError):
        return None


@dataclass(frozen=True, eq=False)
class MetricResult:
    """Curves per score key and method ident (methods appear as they finish)."""

    analysis: "MetricAnalysis"
    images: ImagesView
    model: ModelCard
    curves: Mapping[str, Mapping[str, Curves]]

    @property
    def metric(self) -> Metric:
        return get_metric(self.analysis.metric)

    @property
    def labels(self) -> dict[str, str]:
        return {spec.ident: spec.label for spec in self.analysis.methods}

    @property
    def complete(self) -> bool:
        done = set(next(iter(self.curves.values()), {}))
        return all(spec.ident in done for spec in self.analysis.methods)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.analysis.params)

    def figures(self, show_units: bool = False) -> dict:
        """One figure per score key (scores with curves so far), in the metric's order."""
        from ..plots.curves import curves_figure

        return {info.key: curves_figure(self.curves[info.key], self.labels, show_units=show_units)
                for info in self.metric.scores if self.curves.get(info.key)}

    def table(self):
        from ..plots.curves import score_table

        return score_table(self.curves, self.labels)

    def detail(self, prepared: PreparedImages, maps: np.ndarray, ident: str, row: int) -> Strip | None:
        """What the model saw for image `row` under this metric (None if the metric has no view)."""
        metric = self.metric
        if metric.detail is None:
            return None
        spec = next(s for s in self.analysis.methods if s.ident == ident)
        data = MetricInput(prepared.bundle, prepared.batch, maps, torch.as_tensor(self.analysis.subject.targets), spec,
                           tuple(prepared.digests))
        return metric.detail(data, self.params, row)

    def report_section(self, show_units: bool = False) -> Any:
        from reports.sections import metric_section

        return metric_section(self, show_units)


@register_analysis
@dataclass(frozen=True)
class MetricAnalysis(Analysis):
    kind = "metric"

    metric: str
    subject: Subject
    methods: tuple[MethodSpec, ...]
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, metric: str, subject: Subject, methods: tuple[MethodSpec, ...], params: Mapping[str, Any] | None = None) -> "MetricAnalysis":
        """Settings with every metric parameter resolved (defaults filled in, values checked)."""
        resolved = get_metric(metric).resolve_params(dict(params or {}))
        return cls(metric, subject, tuple(methods), tuple(sorted(resolved.items())))

    @property
    def title(self) -> str:
        return f"{get_metric(self.metric).label} · {len(self.methods)} method(s) × {len(self.subject.images)} image(s)"

    def run(self, inputs: PreparedImages, ctx: JobContext) -> Iterator[MetricResult]:
        check_inputs(self.subject, inputs)
        metric = get_metric(self.metric)
        params = metric.resolve_params(dict(self.params))
        view = store_subject_views(ctx, inputs, self.subject)
        card = inputs.bundle.card
        n = len(self.subject.images)
        per_method = metric.passes(params, n)
        found = {spec.ident: load_curves(ctx.parts, curves_part_name(spec), metric) for spec in self.methods}
        todo = [spec for spec in self.methods if found[spec.ident] is None]
        ctx.plan(maps_passes(todo, self.subject, int(inputs.batch.shape[-1])) + per_method * len(self.methods), "passes")
        curves: dict[str, dict[str, Curves]] = {info.key: {} for info in metric.scores}

        def add(spec: MethodSpec, by_score: Mapping[str, Curves]) -> MetricResult:
            for key, c in by_score.items():
                curves[key][spec.ident] = c
            ordered = {key: {s.ident: sets[s.ident] for s in self.methods if s.ident in sets} for key, sets in curves.items()}
            return MetricResult(self, view, card, ordered)

        yield MetricResult(self, view, card, {key: {} for key in curves})  # the images and predictions at once
        for spec in self.methods:
            if found[spec.ident] is not None:
                ctx.reused(per_method)
                yield add(spec, found[spec.ident])
        if not todo:
            return
        maps = {}
        for _, _, maps in iter_maps(inputs, self.subject, todo, ctx):
            pass
        targets = torch.as_tensor(self.subject.targets, dtype=torch.long)
        for spec in todo:
            ctx.working_on(f"{metric.label}: {spec.label}")
            reported = [0.0]

            def progress(done: int, total: int, reported: list[float] = reported) -> None:
                ctx.advance(done - reported[0])
                reported[0] = done

            data = MetricInput(inputs.bundle, inputs.batch, maps[spec.ident], targets, spec, tuple(inputs.digests), progress)
            by_score = metric.compute(data, params)
            if per_method > reported[0]:
                ctx.reused(per_method - reported[0])  # planned passes the metric did not need
            store_curves(ctx.parts, curves_part_name(spec), by_score)
            yield add(spec, by_score)

    def load(self, ctx: JobContext) -> MetricResult | None:
        metric = get_metric(self.metric)
        view, card = load_images(ctx.parts), load_card(ctx)
        if view is None or card is None:
            return None
        curves: dict[str, dict[str, Curves]] = {info.key: {} for info in metric.scores}
        for spec in self.methods:
            by_score = load_curves(ctx.parts, curves_part_name(spec), metric)
            if by_score is None:
                return None
            for key, c in by_score.items():
                curves[key][spec.ident] = c
        return MetricResult(self, view, card, curves)
