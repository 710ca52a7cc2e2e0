"""The attribution gallery as an analysis: the maps of some methods for some images.

The first partial result carries the images and their top-5 only (the page paints them
at once); each later one adds the maps of one chunk of images for one method, so maps
appear as they finish. Maps are stored by content (`maps.py`), so any other analysis
of the same images, classes and methods reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np

from ..jobs.context import JobContext
from ..methods.registry import MethodSpec
from ..models.bundle import ModelCard
from .base import PLAN_SIZE, Analysis, register_analysis
from .inputs import ImagesView, PreparedImages, Subject, load_images, store_images
from .maps import iter_maps, maps_passes, stored_maps

MODEL_PART = "model"


def check_inputs(subject: Subject, prepared: PreparedImages) -> None:
    """The prepared images must be the ones the settings name, for the same model."""
    if prepared.bundle.model_id != subject.model_id:
        raise ValueError(f"these settings are for model {subject.model_id}, not {prepared.bundle.model_id}")
    if tuple(prepared.digests) != subject.digests:
        raise ValueError("the prepared images are not the images these settings name")
    if subject.truth and tuple(prepared.truth) != subject.truth:
        raise ValueError("the prepared images do not carry the ground truth these settings name")


def store_subject_views(ctx: JobContext, prepared: PreparedImages, subject: Subject) -> ImagesView:
    """Store what a result shows without the model (images, predictions, model card)."""
    view = ImagesView.of(prepared, subject)
    store_images(ctx.parts, view)
    ctx.parts.put_json(MODEL_PART, prepared.bundle.card.__dict__)
    return view


def load_card(ctx: JobContext) -> ModelCard | None:
    record = ctx.parts.get_json(MODEL_PART)
    try:
        return ModelCard(**record) if record else None
    except TypeError:
        return None


@dataclass(frozen=True, eq=False)
class AttributionResult:
    """Maps by method ident (N, H, W), NaN rows until `ready`; `complete` when all are."""

    analysis: "AttributionMaps"
    images: ImagesView
    model: ModelCard
    maps: Mapping[str, np.ndarray]
    ready: Mapping[str, frozenset[int]]

    @property
    def complete(self) -> bool:
        n = len(self.images.names)
        return all(len(self.ready.get(spec.ident, ())) == n for spec in self.analysis.methods)

    @property
    def labels(self) -> dict[str, str]:
        return {spec.ident: spec.label for spec in self.analysis.methods}

    def is_ready(self, ident: str, row: int) -> bool:
        return row in self.ready.get(ident, frozenset())


@register_analysis
@dataclass(frozen=True)
class AttributionMaps(Analysis):
    kind = "attribution"

    subject: Subject
    methods: tuple[MethodSpec, ...]

    @property
    def title(self) -> str:
        return f"Attribution maps · {len(self.methods)} method(s) × {len(self.subject.images)} image(s)"

    def planned_passes(self, size: int = PLAN_SIZE) -> float:
        return maps_passes(self.methods, self.subject, size)

    def run(self, inputs: PreparedImages, ctx: JobContext) -> Iterator[AttributionResult]:
        check_inputs(self.subject, inputs)
        view = store_subject_views(ctx, inputs, self.subject)
        card = inputs.bundle.card
        ready: dict[str, set[int]] = {spec.ident: set() for spec in self.methods}
        maps: dict[str, np.ndarray] = {}
        yield AttributionResult(self, view, card, {}, {})
        ctx.plan(maps_passes(self.methods, self.subject, int(inputs.batch.shape[-1])), "passes")
        for spec, rows, maps in iter_maps(inputs, self.subject, self.methods, ctx):
            ready[spec.ident].update(rows)
            yield AttributionResult(self, view, card, maps, {k: frozenset(v) for k, v in ready.items()})

    def load(self, ctx: JobContext) -> AttributionResult | None:
        view, card = load_images(ctx.parts), load_card(ctx)
        maps = stored_maps(self.subject, self.methods, ctx)
        if view is None or card is None or maps is None:
            return None
        every = frozenset(range(len(self.subject.images)))
        return AttributionResult(self, view, card, maps, {spec.ident: every for spec in self.methods})
