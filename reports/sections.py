"""Report sections: small frozen records of plain data, and the functions that build
them from the backend's plain results (each registered for its result type with
`dispatch.section_builder`; `dispatch.build_section(result)` picks it).

A section is a title, a short description, what produced it (model, images,
methods, settings) and a list of blocks. A block is one of three kinds, each
rendered by one template block: an image grid (uint8 RGB arrays), a plotly figure
(its JSON) or a table (strings and numbers). Sections hold no HTML and no
Streamlit objects, so pages, the command line and tests build them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

import explain
from explain.analyses.attribution import AttributionResult
from explain.analyses.inputs import ImagesView
from explain.analyses.metric import MetricResult
from explain.analyses.roar import RoarResult
from explain.analyses.shap_summary import ShapSummaryResult
from explain.evaluation.results import EvaluationResult, Score
from explain.methods.registry import MethodSpec
from explain.metrics.base import Curves
from explain.models.bundle import ModelCard
from explain.plots.curves import best_methods, number_text
from explain.plots.overlay import DisplaySettings, overlay
from explain.plots.shap import beeswarm_figure, cell_importance_figure, shap_image_figure

from .dispatch import section_builder
from .encode import image_data_uri

REPORT_TEMPLATE = "plotly"  # plotly's own default look, whatever process built the figure
# Image columns side by side in a report's image grid (about 200 px each in a 1200 px
# report); wider rows wrap.
GALLERY_COLUMNS = 5


@dataclass(frozen=True)
class MethodInfo:
    """A method as it ran: registry key, label and its resolved parameters."""

    key: str
    label: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, spec: MethodSpec) -> "MethodInfo":
        """The method as it ran, every parameter recorded (defaults filled in); a key
        outside the registry (ROAR's random baseline) keeps its parameters as given."""
        params = spec.resolved if spec.key in {m.key for m in explain.list_methods()} else dict(spec.params)
        return cls(key=spec.key, label=spec.label, params=tuple(sorted(params.items())))


@dataclass(frozen=True)
class SectionContext:
    """Where a section's numbers come from; the report header merges these."""

    model: ModelCard | None = None
    images: tuple[str, ...] = ()
    methods: tuple[MethodInfo, ...] = ()
    settings: tuple[tuple[str, str], ...] = ()


def make_context(
    model: ModelCard | None,
    images: Sequence[str] = (),
    methods: Sequence[MethodSpec] = (),
    settings: Mapping[str, Any] | None = None,
) -> SectionContext:
    """Context from a model card, image names, the methods as run and free-form settings."""
    return SectionContext(
        model=model,
        images=tuple(str(name) for name in images),
        methods=tuple(MethodInfo.of(spec) for spec in methods),
        settings=tuple((str(k), str(v)) for k, v in (settings or {}).items()),
    )


@dataclass(frozen=True, eq=False)
class ImageGrid:
    """Rows x columns of uint8 RGB images (None leaves a cell empty), with labels.

    `row_notes` are short ranked lines under each row label (e.g. the top-5 predictions);
    `captions[r][c]` a caption under one cell. Rows with more than `max_columns` cells
    wrap onto several lines (each cell then shows its column label).
    """

    kind: ClassVar[str] = "image_grid"
    column_labels: tuple[str, ...]
    row_labels: tuple[str, ...]
    cells: tuple[tuple[np.ndarray | None, ...], ...]
    row_notes: tuple[tuple[str, ...], ...] = ()
    captions: tuple[tuple[str, ...], ...] = ()
    max_columns: int = GALLERY_COLUMNS

    def __post_init__(self) -> None:
        if len(self.cells) != len(self.row_labels):
            raise ValueError(f"{len(self.cells)} rows of cells for {len(self.row_labels)} row labels")
        if self.max_columns < 1:
            raise ValueError("max_columns must be at least 1")
        for row in self.cells:
            if len(row) != len(self.column_labels):
                raise ValueError(f"a row has {len(row)} cells for {len(self.column_labels)} columns")
            for cell in row:
                if cell is not None and (cell.dtype != np.uint8 or cell.ndim != 3 or cell.shape[2] != 3):
                    raise ValueError(f"cells must be uint8 RGB arrays (H, W, 3), got {cell.dtype} {cell.shape}")


@dataclass(frozen=True)
class Figure:
    """An interactive plotly figure, stored as the figure's JSON. Consecutive figures
    sit side by side unless `full_width`."""

    kind: ClassVar[str] = "figure"
    figure_json: str
    caption: str = ""
    full_width: bool = False

    @classmethod
    def of(cls, figure: go.Figure, caption: str = "", full_width: bool = False) -> "Figure":
        """From a `plotly.graph_objects.Figure`; its RGB image traces are stored as JPEG/PNG.
        The report's own template replaces the one the figure was built with: inside the
        app that is Streamlit's, whose placeholder colours (#000001...) only Streamlit's
        front end resolves; offline every trace would be drawn near-black."""
        figure = compact_images(figure)
        figure.update_layout(template=REPORT_TEMPLATE)
        return cls(figure_json=figure.to_json(), caption=caption, full_width=full_width)


def compact_images(figure: go.Figure) -> go.Figure:
    """A copy of `figure` whose image traces given as uint8 RGB pixels (`z`) carry them
    as a `source` data URI instead (JPEG, PNG when small): a 224 px photo is ~15 kB
    rather than ~200 kB of base64 pixels. Same pixel size, so axes and overlays match."""
    figure = type(figure)(figure)
    for trace in figure.data:
        if trace.type != "image" or trace.z is None or trace.source is not None:
            continue
        z = np.asarray(trace.z)
        if z.dtype == np.uint8 and z.ndim == 3 and z.shape[2] == 3:
            trace.update(source=image_data_uri(z, max_side=max(z.shape[:2])), z=None)
    return figure

DEFAULT_FLOAT_FORMAT = "{:.3f}"


@dataclass(frozen=True)
class Table:
    """A table of plain values; floats are shown with `float_format`."""

    kind: ClassVar[str] = "table"
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    caption: str = ""
    float_format: str = DEFAULT_FLOAT_FORMAT

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"a row has {len(row)} values for {len(self.columns)} columns")

    @classmethod
    def of_frame(cls, frame: pd.DataFrame, caption: str = "", float_format: str = DEFAULT_FLOAT_FORMAT) -> "Table":
        """From a pandas DataFrame; a named index becomes the first column."""
        if frame.index.name is not None:
            frame = frame.reset_index()
        rows = tuple(
            tuple(v.item() if isinstance(v, np.generic) else v for v in row) for row in frame.itertuples(index=False)
        )
        return cls(tuple(str(c) for c in frame.columns), rows, caption, float_format)

    def formatted_rows(self) -> list[list[str]]:
        def fmt(value: Any) -> str:
            if isinstance(value, (float, np.floating)):
                if self.float_format == DEFAULT_FLOAT_FORMAT and np.isfinite(value):
                    return number_text(float(value))  # a tiny nonzero value is not shown as 0
                return self.float_format.format(float(value))
            return str(value)

        return [[fmt(v) for v in row] for row in self.rows]


Block = ImageGrid | Figure | Table


@dataclass(frozen=True, eq=False)
class Section:
    """One part of a report. `key` says what produced it (e.g. "gallery"); the report
    uses it, with the position, for the anchor of the table of contents."""

    key: str
    title: str
    blocks: tuple[Block, ...]
    description: str = ""
    context: SectionContext = field(default_factory=SectionContext)


@section_builder(AttributionResult)
def gallery_section(
    result: AttributionResult, display: DisplaySettings | None = None, title: str = "Attribution gallery"
) -> Section:
    """The gallery as the page shows it, from an `explain.analyses.AttributionResult`:
    one row per image (photo and its top-5), one column per method (heatmap over the
    photo, captioned with the class explained)."""
    display = display or DisplaySettings()
    analysis, images = result.analysis, result.images
    shown = [spec for spec in analysis.methods if spec.ident in result.maps]
    cells, notes, captions = [], [], []
    for row, name in enumerate(images.names):
        class_caption = images.explained(row)
        cells.append(
            (images.display[row], *(overlay(images.display[row], result.maps[s.ident][row], display) for s in shown))
        )
        notes.append(tuple(f"{label} ({p:.1%})" for _, label, p in images.top5[row]))
        captions.append((str(name), *([class_caption] * len(shown))))
    grid = ImageGrid(
        column_labels=("Image", *(s.label for s in shown)),
        row_labels=tuple(str(n) for n in images.names),
        cells=tuple(cells),
        row_notes=tuple(notes),
        captions=tuple(captions),
    )
    explained = analysis.subject.class_choice.describe(_names(images))
    return Section(
        key="gallery",
        title=title,
        blocks=(grid,),
        description=(
            f"Attribution maps of {len(shown)} method(s) over {len(images.names)} image(s), explaining {explained}. "
            f"Heatmap: {display.sign} values, colormap {display.colormap}, clipped at the "
            f"{display.clip_percentile:g}th percentile of |map|."
        ),
        context=make_context(
            result.model, images.names, shown,
            {"class explained": explained, "colormap": display.colormap, "values shown": display.sign,
             "clip percentile": display.clip_percentile, "overlay opacity": display.opacity},
        ),
    )


def _names(images: ImagesView) -> dict[int, str]:
    """Class index -> name for the classes a result explains (enough for `describe`)."""
    return dict(zip(images.targets, images.target_names, strict=True))


def _explained_classes(images: ImagesView) -> str:
    return "; ".join(
        f"{name}: {c} {label}" for name, c, label in zip(images.names, images.targets, images.target_names, strict=True)
    )


def _best_sentence(result_curves: Mapping[str, Mapping[str, Curves]], labels: Mapping[str, str]) -> str:
    best = best_methods(result_curves, labels)
    parts = []
    for key, sets in result_curves.items():
        if sets:
            metric = next(iter(sets.values())).metric
            parts.append(f"{metric.name}: {metric.direction}" + (f", best {best[key]}" if best.get(key) else ""))
    return "; ".join(parts)


@section_builder(MetricResult)
def metric_section(result: MetricResult, show_units: bool = False) -> Section:
    """Any registered metric's curves and score table, from an `explain.analyses.MetricResult`:
    one figure per score (aggregate curve with its band, per-image curves when
    `show_units`), one table; skipped images are named."""
    metric, images, labels = result.metric, result.images, result.labels
    skipped = []
    for info in metric.scores:
        first = next(iter(result.curves.get(info.key, {}).values()), None)
        if first is not None:
            skipped += [f"{info.short_name} skipped {images.names[s.index]}: {s.reason}" for s in first.skipped]
    caption = f"Scores over {len(images.names)} image(s); " + _best_sentence(result.curves, labels) + "."
    figures = tuple(
        Figure.of(fig, caption=metric.score(key).description) for key, fig in result.figures(show_units).items()
    )
    return Section(
        key=metric.key,
        title=metric.label,
        blocks=(*figures, Table.of_frame(result.table(), caption=caption)),
        description=" ".join([metric.description, *(s + "." for s in skipped), metric.reference]),
        context=make_context(
            result.model,
            images.names,
            result.analysis.methods,
            {
                **{p.label: result.params[p.name] for p in metric.params},
                "classes explained": _explained_classes(images),
            },
        ),
    )


@section_builder(ShapSummaryResult)
def shap_summary_section(
    result: ShapSummaryResult, cells: int = 7, max_features: int = 15, title: str = "SHAP summary"
) -> Section:
    """Per plotted image the SHAP image plot of its top-k classes, then across images the
    grid-cell beeswarm, the mean |SHAP| heatmap over the mean image and the ranked
    cells, from an `explain.analyses.ShapSummaryResult`."""
    images, analysis = result.images, result.analysis
    summary = result.summary(cells)
    plotted, k = result.per_class.shape[:2]
    per_image = tuple(
        Figure.of(
            shap_image_figure(
                images.display[i], result.per_class[i], result.class_titles(i), image_title=str(images.names[i])
            ),
            full_width=True,
        )
        for i in range(plotted)
    )
    mean_image = images.display.astype(np.float64).mean(axis=0).round().astype(np.uint8)
    ranked = Table(
        ("rank", "cell", "mean |SHAP|"),
        tuple((rank, cell, value) for rank, (cell, value) in enumerate(summary.ranked(10), start=1)),
        caption="Most important grid cells (r1c1 = top left), mean |SHAP| over the images.",
        float_format="{:.3g}",
    )
    rows, cols = summary.grid
    n = len(images.names)
    return Section(
        key="shap_summary",
        title=title,
        blocks=(*per_image, Figure.of(beeswarm_figure(summary, max_features=max_features),
                                      caption="Each dot is one image; colour is the cell's mean intensity."),
                Figure.of(cell_importance_figure(summary, mean_image)), ranked),
        description=(
            f"{analysis.method.label} values. Per image{f' (the first {plotted} of {n})' if plotted < n else ''}: "
            "red pixels raise the class score, blue lower it (one symmetric scale per "
            f"image). Across {n} image(s): features are the cells of a {rows} x {cols} grid (the same cell in "
            "every image), each cell's value the sum of its pixels' SHAP values for the explained class."
        ),
        context=make_context(
            result.model, images.names, (analysis.method,),
            {"grid": f"{rows} x {cols}", "classes per image": k, "classes explained": _explained_classes(images)},
        ),
    )


@section_builder(RoarResult)
def roar_section(result: RoarResult, title: str = "ROAR: remove and retrain") -> Section:
    """The ROAR (or KAR) curves with the random baseline and the accuracy table, from an
    `explain.analyses.RoarResult`. The model is the small CNN retrained from scratch, so
    no model card is recorded."""
    settings, metric = result.settings, result.settings.metric
    caption = f"{metric.name}: {metric.description} " + f"({_best_sentence(result.curves, result.labels)})."
    if not result.complete:
        caption += f" Partial run: {result.done}/{result.total} retrainings."
    registered = [m for m in settings.methods if m.key in {x.key for x in explain.list_methods()}]
    base = "n/a" if result.base_accuracy is None else f"{result.base_accuracy:.3f}"
    return Section(
        key="roar",
        title=title,
        blocks=(Figure.of(result.figure()), Table.of_frame(result.table(), caption=caption)),
        description=(
            f"For each method and fraction, the most important pixels of every train and test image are "
            f"{'kept (the rest replaced' if settings.mode == 'kar' else 'replaced'} by the per-channel mean"
            f"{')' if settings.mode == 'kar' else ''}, the same network is retrained from scratch and its test "
            "accuracy "
            f"reported (Hooker et al., NeurIPS 2019). Dataset: {result.analysis.dataset_name}. Network: "
            f"{result.architecture}; unmodified test accuracy {base}. The dashed grey line is the random ranking: a "
            "faithful method makes accuracy fall faster than it."
        ),
        context=make_context(
            None,
            (),
            registered,
            {
                "dataset": result.analysis.dataset_name,
                "network": result.architecture,
                "variant": settings.mode.upper(),
                "fractions": ", ".join(f"{f:.0%}" for f in settings.fractions),
                "repeats": settings.repeats,
                "seed": settings.seed,
                "epochs": settings.recipe.epochs,
            },
        ),
    )


@section_builder(EvaluationResult)
def benchmark_section(
    result: EvaluationResult,
    score_key: str | None = None,
    model_index: int | None = None,
    worst_k: int = 4,
    title: str = "Benchmark across checkpoints",
) -> Section:
    """A dataset-scale evaluation, from an `explain.evaluation.EvaluationResult`: each
    score against the checkpoints beside their accuracy, the leaderboard of one model
    (mean per-image AUC with a bootstrap 95 % interval), its per-class means and, when
    the run kept maps, its worst images per method."""
    score = result.score(score_key)
    index = len(result.models) - 1 if model_index is None else int(model_index)
    model = result.models[index]
    accuracy = result.accuracy()
    blocks: list[Block] = []
    if not accuracy.empty:
        shown = accuracy[
            ["model", "images", "labelled", "accuracy", "accuracy_low", "accuracy_high", "mean_probability"]
        ]
        blocks.append(
            Table.of_frame(
                shown.rename(
                    columns={
                        "accuracy_low": "accuracy 95% low",
                        "accuracy_high": "accuracy 95% high",
                        "mean_probability": "mean top-1 probability",
                    }
                ),
                caption="Checkpoints in order, with their accuracy on the labelled images.",
            )
        )
    for s in result.scores:
        blocks.append(
            Figure.of(
                result.checkpoint_figure(s),
                full_width=True,
                caption=f"{s.name} ({s.direction}) per method at each checkpoint, mean over images with "
                "a seeded bootstrap 95 % interval; right: each checkpoint's accuracy.",
            )
        )
    blocks.append(Table.of_frame(result.leaderboard_display(score, index),
                                 caption=f"Leaderboard of {model}, ranked by {score.name} ({score.direction}); "
                                         "mean per-image AUC [bootstrap 95 % interval]."))
    figure = result.class_figure(score, index)
    if figure is not None:
        blocks.append(
            Figure.of(figure, full_width=True, caption=f"{score.name} of {model} per labelled class and method.")
        )
    worst = result.worst(score, index, worst_k)
    if worst and any(item["picture"] is not None for _, items in worst for item in items):
        k = max(len(items) for _, items in worst)
        blocks.append(
            ImageGrid(
                column_labels=tuple(f"worst {i + 1}" for i in range(k)),
                row_labels=tuple(label for label, _ in worst),
                cells=tuple(
                    tuple([item["picture"] for item in items] + [None] * (k - len(items))) for _, items in worst
                ),
                captions=tuple(
                    tuple([_worst_caption(item, score) for item in items] + [""] * (k - len(items)))
                    for _, items in worst
                ),
                max_columns=k,
            )
        )
    manifest = result.manifest
    settings = manifest.get("settings", {})
    methods = [MethodSpec.of(m["key"], m["params"]) for m in manifest.get("methods", [])]
    state = "" if result.complete else f" Partial run: {result.done_chunks} of {result.total_chunks} chunks."
    return Section(
        key="benchmark",
        title=title,
        blocks=tuple(blocks),
        description=(
            f"{len(result.models)} checkpoint(s) ({', '.join(result.models)}) explained on {manifest.get('images', 0)} "
            f"image(s) of {result.data_label} by {len(methods)} method(s), explaining "
            f"{'each image’s label' if settings.get('class_mode') == 'label' else 'each image’s top-1 prediction'}. "
            "Scores are each metric's per-image area under its curve; "
            f"{'; '.join(f'{s.name}: {s.direction}' for s in result.scores)}." + state
        ),
        context=make_context(
            None,
            (),
            methods,
            {
                "results": result.root.name,
                "checkpoints": ", ".join(result.models),
                "data": result.data_label,
                "images": manifest.get("images", 0),
                "class explained": settings.get("class_mode", ""),
                "metrics": ", ".join(f"{s.name}" for s in result.scores),
                "bootstrap": "1,000 resamples, seed 0, 95 % percentile interval",
            },
        ),
    )


def _worst_caption(item: Mapping[str, Any], score: Score) -> str:
    label = "" if item.get("label") is None else f" · label {item['label']}"
    return f"{item['image']}{label} · pred {item['prediction_name']} · {score.name} {item[score.column]:.3f}"
