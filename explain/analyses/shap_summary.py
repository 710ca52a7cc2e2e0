"""The SHAP summary as an analysis: per plotted image the maps of its top-k classes,
and for every image the map of its explained class, from one SHAP-family method.

The grid of the summary (its cells are the features) and how many cells are shown are
display choices, not settings: changing them recomputes nothing (`GridSummary` is
derived from the stored maps in milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..jobs.context import JobContext
from ..methods.registry import MethodSpec
from ..models.bundle import ModelCard
from .attribution import check_inputs, load_card, store_subject_views
from .base import PLAN_SIZE, Analysis, register_analysis
from .inputs import ImagesView, PreparedImages, Subject, load_images
from .maps import all_maps, maps_passes, stored_maps
from ..plots.shap_grid import GridSummary, summarize_grid


@dataclass(frozen=True, eq=False)
class ShapSummaryResult:
    """`per_class` (M, k, H, W): maps of the top-k classes of the first M images;
    `maps` (N, H, W): each image's explained class; `classes` (M, k)."""

    analysis: "ShapSummary"
    images: ImagesView
    model: ModelCard
    per_class: np.ndarray
    classes: np.ndarray
    maps: np.ndarray
    complete: bool = True

    def summary(self, cells: int) -> GridSummary:
        return summarize_grid(
            self.maps, self.images.display, (cells, cells), image_names=self.images.names, targets=self.images.targets,
            target_names=self.images.target_names, method=self.analysis.method.label,
        )

    def class_titles(self, row: int) -> list[str]:
        """'tabby (37%)' for each explained class of plotted image `row`."""
        return [f"{name} ({p:.0%})" for _, name, p in self.images.top5[row][: self.analysis.top_k]]


@register_analysis
@dataclass(frozen=True)
class ShapSummary(Analysis):
    kind = "shap_summary"

    subject: Subject
    method: MethodSpec
    top_k: int = 2
    plotted: int = 6

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= 5:
            raise ValueError("classes per image must be between 1 and 5")
        if self.plotted < 1:
            raise ValueError("plot at least one image")

    @property
    def title(self) -> str:
        return f"SHAP summary · {self.method.label} × {len(self.subject.images)} image(s)"

    def class_subjects(self, top5) -> list[Subject]:
        """One subject per rank r < top_k: the plotted images, each explaining its r-th class."""
        m = min(self.plotted, len(self.subject.images))
        refs = self.subject.images[:m]
        return [
            Subject(self.subject.model_id, self.subject.model_name, refs, tuple(int(top5[i][r][0]) for i in range(m)))
            for r in range(self.top_k)
        ]

    def planned_passes(self, size: int = PLAN_SIZE) -> float:
        plotted = min(self.plotted, len(self.subject.images))
        per_image = maps_passes([self.method], self.subject, size) / max(1, len(self.subject.images))
        return per_image * (len(self.subject.images) + self.top_k * plotted)

    def run(self, inputs: PreparedImages, ctx: JobContext) -> Iterator[ShapSummaryResult]:
        check_inputs(self.subject, inputs)
        view = store_subject_views(ctx, inputs, self.subject)
        m = min(self.plotted, len(inputs))
        plotted = inputs.select(inputs.digests[:m])
        subjects = self.class_subjects(inputs.top5)
        size = int(inputs.batch.shape[-1])
        ctx.plan(
            maps_passes([self.method], self.subject, size) + sum(maps_passes([self.method], s, size) for s in subjects),
            "passes",
        )
        per_class = []
        for subject in subjects:
            per_class.append(all_maps(plotted, subject, [self.method], ctx)[self.method.ident])
        explained = all_maps(inputs, self.subject, [self.method], ctx)
        yield self._result(view, inputs.bundle.card, per_class, explained[self.method.ident])

    def _result(
        self, view: ImagesView, card: ModelCard, per_class: list[np.ndarray], maps: np.ndarray
    ) -> ShapSummaryResult:
        m = per_class[0].shape[0]
        classes = np.array([[view.top5[i][r][0] for r in range(self.top_k)] for i in range(m)], dtype=int)
        return ShapSummaryResult(self, view, card, np.stack(per_class, axis=1), classes, maps)

    def load(self, ctx: JobContext) -> ShapSummaryResult | None:
        view, card = load_images(ctx.parts), load_card(ctx)
        if view is None or card is None:
            return None
        stored = [stored_maps(s, [self.method], ctx) for s in self.class_subjects(view.top5)]
        per_class = [p[self.method.ident] for p in stored if p is not None]
        explained = stored_maps(self.subject, [self.method], ctx)
        if explained is None or len(per_class) != len(stored):
            return None
        return self._result(view, card, per_class, explained[self.method.ident])
