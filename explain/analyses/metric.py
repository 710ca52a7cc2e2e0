"""Any registered metric as an analysis: maps first (reused from the store where they
exist), then the metric per method, each method's curves stored as soon as they are
done (a killed run resumes with them) and yielded as a partial result. A comparison of
methods (`Comparison`, e.g. method agreement) runs once over every method's maps and
stores its `Pairs`.

One result type for every metric (`MetricResult`): curves per score and method (for a
comparison, each method's mean agreement with the others), the comparison's pairs, one
figure per score, one table, one report section, all driven by the metric's
`MetricInfo`s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..jobs.context import JobContext
from ..methods.registry import MethodSpec
from ..metrics.base import Curves, Pairs, Skipped
from ..metrics.executor import MetricBatch, compare_methods, metric_passes, score_method, summaries
from ..metrics.registry import Comparison, Metric, MetricFamily, MetricInput, Strip, get_metric
from ..models.bundle import ModelCard
from ..plots.masks import mask_overlay
from ..plots.overlay import overlay
from .attribution import check_inputs, load_card, store_subject_views
from .base import PLAN_SIZE, Analysis, register_analysis
from .inputs import ImagesView, PreparedImages, Subject, load_images
from .maps import all_maps, maps_passes


def curves_part_name(spec: MethodSpec) -> str:
    return "curves-" + hashlib.sha1(spec.ident.encode("utf-8")).hexdigest()[:24]


def store_curves(parts, name: str, curves: Mapping[str, Curves]) -> None:
    """One method's curves of every score: arrays in one `.npz`, the rest as JSON."""
    arrays, record = {}, {}
    for key, c in curves.items():
        arrays[f"{key}.x"] = c.x
        arrays[f"{key}.curves"] = c.curves
        record[key] = {"method": c.method, "kept": list(c.kept), "skipped": [[s.index, s.reason] for s in c.skipped],
                       "extra": c.extra, "x_labels": list(c.x_labels)}
    parts.put_arrays(name, arrays)
    parts.put_json(name, record)


def load_curves(parts, name: str, metric: MetricFamily) -> dict[str, Curves] | None:
    arrays, record = parts.get_arrays(name), parts.get_json(name)
    if arrays is None or record is None:
        return None
    try:
        return {
            info.key: Curves(
                info,
                record[info.key]["method"],
                arrays[f"{info.key}.x"],
                arrays[f"{info.key}.curves"],
                tuple(record[info.key]["kept"]),
                tuple(Skipped(int(i), str(r)) for i, r in record[info.key]["skipped"]),
                dict(record[info.key].get("extra", {})),
                tuple(record[info.key].get("x_labels", ())),
            )
            for info in metric.scores
        }
    except (KeyError, ValueError, TypeError):
        return None


def pairs_part_name(specs: Sequence[MethodSpec]) -> str:
    return "pairs-" + hashlib.sha1(json.dumps([s.ident for s in specs]).encode("utf-8")).hexdigest()[:24]


def store_pairs(parts, name: str, pairs: Mapping[str, Pairs]) -> None:
    parts.put_arrays(name, {key: p.values for key, p in pairs.items()})
    parts.put_json(name, {key: list(p.methods) for key, p in pairs.items()})


def load_pairs(parts, name: str, metric: MetricFamily) -> dict[str, Pairs] | None:
    arrays, record = parts.get_arrays(name), parts.get_json(name)
    if arrays is None or record is None:
        return None
    try:
        return {info.key: Pairs(info, tuple(record[info.key]), arrays[info.key]) for info in metric.scores}
    except (KeyError, ValueError, TypeError):
        return None


@dataclass(frozen=True, eq=False)
class MetricResult:
    """Curves per score key and method ident (methods appear as they finish); for a
    comparison of methods also its `Pairs` per score key (and `curves` its per-method
    summaries)."""

    analysis: "MetricAnalysis"
    images: ImagesView
    model: ModelCard
    curves: Mapping[str, Mapping[str, Curves]]
    pairs: Mapping[str, Pairs] = field(default_factory=dict)

    @property
    def metric(self) -> MetricFamily:
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
        """One figure per score key (scores with results so far), in the metric's order:
        curves, a strip of units per method for one value per unit, a heatmap for pairs."""
        from ..plots.curves import curves_figure, pairs_figure

        if self.pairs:
            return {key: pairs_figure(pairs, self.labels, self.images.names) for key, pairs in self.pairs.items()}
        return {info.key: curves_figure(self.curves[info.key], self.labels, show_units=show_units)
                for info in self.metric.scores if self.curves.get(info.key)}

    def table(self):
        from ..plots.curves import score_table

        return score_table(self.curves, self.labels)

    def detail(self, prepared: PreparedImages, maps: np.ndarray, ident: str, row: int) -> Strip | None:
        """What the model saw for image `row` under this metric (None if the metric has no
        view), maps the metric hands over drawn over their images."""
        metric = self.metric
        if not isinstance(metric, Metric) or metric.detail is None:
            return None
        spec = next(s for s in self.analysis.methods if s.ident == ident)
        data = MetricInput(prepared.bundle, prepared.batch, maps, torch.as_tensor(self.analysis.subject.targets), spec,
                           tuple(prepared.digests), masks=prepared.masks)
        return drawn(metric.detail(data, self.params, row))


def drawn(strip: Strip) -> Strip:
    """The strip with each of its maps drawn over its image (as the gallery draws maps; an
    all-NaN map leaves the image as it is) and its ground-truth outlines over that."""
    pictures = strip.images
    if strip.maps is not None:
        pictures = np.stack([image if np.isnan(m).all() else overlay(image, m)
                             for image, m in zip(pictures, strip.maps, strict=True)])
    if strip.outlines is not None:
        pictures = np.stack([mask_overlay(image, m) for image, m in zip(pictures, strip.outlines, strict=True)])
    return Strip(pictures, strip.captions, strip.note)


@register_analysis
@dataclass(frozen=True)
class MetricAnalysis(Analysis):
    kind = "metric"

    metric: str
    subject: Subject
    methods: tuple[MethodSpec, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def metric_keys(self) -> tuple[str, ...]:
        return (self.metric,)

    @classmethod
    def of(
        cls, metric: str, subject: Subject, methods: tuple[MethodSpec, ...], params: Mapping[str, Any] | None = None
    ) -> "MetricAnalysis":
        """Settings with every metric parameter resolved (defaults filled in, values checked)."""
        resolved = get_metric(metric).resolve_params(dict(params or {}))
        return cls(metric, subject, tuple(methods), tuple(sorted(resolved.items())))

    @property
    def title(self) -> str:
        return f"{get_metric(self.metric).label} · {len(self.methods)} method(s) × {len(self.subject.images)} image(s)"

    def planned_passes(self, size: int = PLAN_SIZE) -> float:
        metric, n = get_metric(self.metric), len(self.subject.images)
        params = metric.resolve_params(dict(self.params))
        return maps_passes(self.methods, self.subject, size) + metric_passes(metric, params, self.methods, n, size)

    def run(self, inputs: PreparedImages, ctx: JobContext) -> Iterator[MetricResult]:
        check_inputs(self.subject, inputs)
        metric = get_metric(self.metric)
        params = metric.resolve_params(dict(self.params))
        view = store_subject_views(ctx, inputs, self.subject)
        card = inputs.bundle.card
        yield MetricResult(
            self, view, card, {info.key: {} for info in metric.scores}
        )  # the images and predictions at once
        if isinstance(metric, Comparison):
            yield from self._compare(metric, params, inputs, ctx, view)
            return
        if not isinstance(metric, Metric):
            raise TypeError(f"{metric.label}: a metric family is a Metric or a Comparison")
        n, size = len(self.subject.images), int(inputs.batch.shape[-1])
        cost = {spec.ident: metric.cost(params, n, spec, size) for spec in self.methods}
        found = {spec.ident: load_curves(ctx.parts, curves_part_name(spec), metric) for spec in self.methods}
        todo = [spec for spec in self.methods if found[spec.ident] is None]
        ctx.plan(maps_passes(todo, self.subject, size) + sum(cost.values()), "passes")
        curves: dict[str, dict[str, Curves]] = {info.key: {} for info in metric.scores}

        def add(spec: MethodSpec, by_score: Mapping[str, Curves]) -> MetricResult:
            for key, c in by_score.items():
                curves[key][spec.ident] = c
            ordered = {
                key: {s.ident: sets[s.ident] for s in self.methods if s.ident in sets} for key, sets in curves.items()
            }
            return MetricResult(self, view, card, ordered)

        for spec in self.methods:
            stored = found[spec.ident]
            if stored is not None:
                ctx.reused(cost[spec.ident])
                yield add(spec, stored)
        if not todo:
            return
        maps = all_maps(inputs, self.subject, todo, ctx)
        batch = self._metric_batch(inputs)
        for spec in todo:
            ctx.working_on(f"{metric.label}: {spec.label}")
            scored = score_method(metric, params, batch, maps[spec.ident], spec, ctx.advance)
            if cost[spec.ident] > scored.passes:
                ctx.reused(cost[spec.ident] - scored.passes)  # planned passes the metric did not need
            store_curves(ctx.parts, curves_part_name(spec), scored.curves)
            yield add(spec, scored.curves)

    def _metric_batch(self, inputs: PreparedImages) -> MetricBatch:
        targets = torch.as_tensor(self.subject.targets, dtype=torch.long)
        return MetricBatch(inputs.bundle, inputs.batch, targets, tuple(inputs.digests), inputs.masks)

    def _compare(self, metric: Comparison, params: Mapping[str, Any], inputs: PreparedImages, ctx: JobContext,
                 view: ImagesView) -> Iterator[MetricResult]:
        """A comparison: every method's maps, then one `compute` over all of them."""
        card, name = inputs.bundle.card, pairs_part_name(self.methods)
        pairs = load_pairs(ctx.parts, name, metric)
        n = len(self.subject.images)
        if pairs is None:
            ctx.plan(
                maps_passes(self.methods, self.subject, int(inputs.batch.shape[-1])) + metric.passes(params, n),
                "passes",
            )
            maps = all_maps(inputs, self.subject, self.methods, ctx)
            ctx.working_on(f"{metric.label}: {len(self.methods)} method(s)")
            pairs = compare_methods(metric, params, self._metric_batch(inputs), maps, self.methods, ctx.advance)
            store_pairs(ctx.parts, name, pairs)
        yield MetricResult(self, view, card, summaries(pairs), pairs)

    def load(self, ctx: JobContext) -> MetricResult | None:
        metric = get_metric(self.metric)
        view, card = load_images(ctx.parts), load_card(ctx)
        if view is None or card is None:
            return None
        if isinstance(metric, Comparison):
            pairs = load_pairs(ctx.parts, pairs_part_name(self.methods), metric)
            return None if pairs is None else MetricResult(self, view, card, summaries(pairs), pairs)
        curves: dict[str, dict[str, Curves]] = {info.key: {} for info in metric.scores}
        for spec in self.methods:
            by_score = load_curves(ctx.parts, curves_part_name(spec), metric)
            if by_score is None:
                return None
            for key, c in by_score.items():
                curves[key][spec.ident] = c
        return MetricResult(self, view, card, curves)
