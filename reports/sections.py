"""Report sections: small frozen records of plain data, and the functions that build
them from the backend's plain results.

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

import explain
from explain.plots.overlay import DisplaySettings, overlay

from .encode import image_data_uri

REPORT_TEMPLATE = "plotly"  # plotly's own default look, whatever process built the figure
# Image columns side by side in a report's image grid (about 200 px each in a 1200 px
# report); wider rows wrap.
GALLERY_COLUMNS = 5


@dataclass(frozen=True)
class ModelInfo:
    """What a reader needs to know to load the same model again."""

    name: str
    weights: str
    device: str
    model_id: str
    num_classes: int
    num_parameters: int

    @classmethod
    def of(cls, bundle: explain.ModelBundle) -> "ModelInfo":
        return cls(
            name=bundle.name,
            weights=bundle.weights,
            device=str(bundle.device),
            model_id=bundle.model_id,
            num_classes=bundle.num_classes,
            num_parameters=bundle.num_parameters,
        )


@dataclass(frozen=True)
class MethodInfo:
    """A method as it ran: registry key, label and its resolved parameters."""

    key: str
    label: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, key: str, params: Mapping[str, Any] | None = None) -> "MethodInfo":
        """The registered method with defaults filled in (so the report records every value)."""
        method = explain.get_method(key)
        resolved = method.resolve_params(dict(params or {}))
        return cls(key=key, label=method.label, params=tuple(sorted(resolved.items())))


@dataclass(frozen=True)
class SectionContext:
    """Where a section's numbers come from; the report header merges these."""

    model: ModelInfo | None = None
    images: tuple[str, ...] = ()
    methods: tuple[MethodInfo, ...] = ()
    settings: tuple[tuple[str, str], ...] = ()


def make_context(
    bundle: explain.ModelBundle | None,
    images: Sequence[str] = (),
    methods: Mapping[str, Mapping[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> SectionContext:
    """Context from a bundle, image names, {method: params} and free-form settings."""
    return SectionContext(
        model=ModelInfo.of(bundle) if bundle is not None else None,
        images=tuple(str(name) for name in images),
        methods=tuple(MethodInfo.of(key, params) for key, params in (methods or {}).items()),
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
    def of(cls, figure: Any, caption: str = "", full_width: bool = False) -> "Figure":
        """From a `plotly.graph_objects.Figure`; its RGB image traces are stored as JPEG/PNG.
        The report's own template replaces the one the figure was built with: inside the
        app that is Streamlit's, whose placeholder colours (#000001...) only Streamlit's
        front end resolves; offline every trace would be drawn near-black."""
        figure = compact_images(figure)
        figure.update_layout(template=REPORT_TEMPLATE)
        return cls(figure_json=figure.to_json(), caption=caption, full_width=full_width)


def compact_images(figure: Any) -> Any:
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


@dataclass(frozen=True)
class Table:
    """A table of plain values; floats are shown with `float_format`."""

    kind: ClassVar[str] = "table"
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    caption: str = ""
    float_format: str = "{:.3f}"

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"a row has {len(row)} values for {len(self.columns)} columns")

    @classmethod
    def of_frame(cls, frame: Any, caption: str = "", float_format: str = "{:.3f}") -> "Table":
        """From a pandas DataFrame; a named index becomes the first column."""
        if frame.index.name is not None:
            frame = frame.reset_index()
        rows = tuple(tuple(v.item() if isinstance(v, np.generic) else v for v in row) for row in frame.itertuples(index=False))
        return cls(tuple(str(c) for c in frame.columns), rows, caption, float_format)

    def formatted_rows(self) -> list[list[str]]:
        def fmt(value: Any) -> str:
            if isinstance(value, (float, np.floating)):
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


def gallery_section(
    bundle: explain.ModelBundle,
    names: Sequence[str],
    display: np.ndarray,
    maps: Mapping[str, np.ndarray],
    methods: Mapping[str, Mapping[str, Any]],
    target: int | None,
    top5: Sequence[Sequence[tuple[int, str, float]]],
    settings: DisplaySettings = DisplaySettings(),
    title: str = "Attribution gallery",
) -> Section:
    """The gallery as the page shows it: one row per image (photo and its top-5), one
    column per method (heatmap over the photo, captioned with the class explained).

    `display` are the uint8 crops the model saw (N, H, W, 3); `maps[method]` the raw
    (N, H, W) attributions; `target` None means each image's top-1 class.
    """
    shown = [key for key in methods if key in maps]
    labels = [explain.get_method(key).label for key in shown]
    cells, notes, captions = [], [], []
    for row, name in enumerate(names):
        explained = target if target is not None else top5[row][0][0]
        class_caption = f"class {explained}: {bundle.class_names[explained]}"
        cells.append((display[row], *(overlay(display[row], maps[key][row], settings) for key in shown)))
        notes.append(tuple(f"{label} ({p:.1%})" for _, label, p in top5[row]))
        captions.append((str(name), *([class_caption] * len(shown))))
    grid = ImageGrid(
        column_labels=("Image", *labels),
        row_labels=tuple(str(n) for n in names),
        cells=tuple(cells),
        row_notes=tuple(notes),
        captions=tuple(captions),
    )
    explained_text = "each image's top-1 prediction" if target is None else f"class {target}: {bundle.class_names[target]}"
    return Section(
        key="gallery",
        title=title,
        blocks=(grid,),
        description=(
            f"Attribution maps of {len(shown)} method(s) over {len(names)} image(s), explaining {explained_text}. "
            f"Heatmap: {settings.sign} values, colormap {settings.colormap}, clipped at the "
            f"{settings.clip_percentile:g}th percentile of |map|."
        ),
        context=make_context(
            bundle,
            names,
            {key: methods[key] for key in shown},
            {"class explained": explained_text, "colormap": settings.colormap, "values shown": settings.sign,
             "clip percentile": settings.clip_percentile, "overlay opacity": settings.opacity},
        ),
    )


def _explained_classes(bundle: explain.ModelBundle, names: Sequence[str], targets: Sequence[int]) -> str:
    return "; ".join(f"{name}: {int(c)} {bundle.class_names[int(c)]}" for name, c in zip(names, targets))


def _best_sentence(metric: Any, scores: Mapping[str, float], labels: Mapping[str, str]) -> str:
    best = metric.best(scores)
    return f"{metric.name}: {metric.direction}" + (f", best {labels[best]}" if best is not None else "")


def deletion_insertion_section(
    bundle: explain.ModelBundle,
    names: Sequence[str],
    result: Any,
    methods: Mapping[str, Mapping[str, Any]],
    show_images: bool = True,
    title: str = "Deletion & insertion",
) -> Section:
    """Deletion and insertion curves (mean with a band of one standard error, per-image
    curves when `show_images`) and the AUC table, from an
    `explain.metrics.DeletionInsertionResult` for the images `names`."""
    from explain.plots.curves import auc_table, curves_figure
    from explain.metrics import DELETION, INSERTION

    labels = {k: explain.get_method(k).label for k in result.methods}
    table = auc_table([result.deletion, result.insertion], labels)
    deletion_scores = {k: c.mean_auc for k, c in result.deletion.items()}
    insertion_scores = {k: c.mean_auc for k, c in result.insertion.items()}
    caption = (
        f"Mean and standard error over {len(names)} image(s). {_best_sentence(DELETION, deletion_scores, labels)}; "
        f"{_best_sentence(INSERTION, insertion_scores, labels)}."
    )
    return Section(
        key="deletion_insertion",
        title=title,
        blocks=(
            Figure.of(curves_figure(result.deletion, labels, show_images), caption=DELETION.description),
            Figure.of(curves_figure(result.insertion, labels, show_images), caption=INSERTION.description),
            Table.of_frame(table, caption=caption),
        ),
        description=(
            f"Pixels ranked by attribution; deletion replaces the most relevant first with the '{result.substrate}' "
            f"substrate, insertion puts them back into a blurred image, in {result.steps} steps. The curve is the "
            f"probability of the explained class. {DELETION.reference}"
        ),
        context=make_context(
            bundle, names, {k: methods.get(k, {}) for k in result.methods},
            {"substrate": result.substrate, "steps": result.steps,
             "classes explained": _explained_classes(bundle, names, result.targets)},
        ),
    )


def sic_aic_section(
    bundle: explain.ModelBundle,
    names: Sequence[str],
    result: Any,
    methods: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any] | None = None,
    show_images: bool = False,
    title: str = "SIC / AIC",
) -> Section:
    """SIC (median) and AIC (mean) performance information curves and their AUC table,
    from an `explain.metrics.PicResult`; skipped images are named in the description.
    `settings` records how the curves were made (seed fraction, seed, ...)."""
    from explain.plots.curves import pic_figure, pic_table
    from explain.metrics import AIC, SIC

    labels = {k: explain.get_method(k).label for k in result.methods}
    table = pic_table(result.sic, result.aic, labels)
    first = result.methods[0]
    skipped = [
        f"{metric.name.replace(' AUC', '')} skipped {names[s.index]}: {s.reason}"
        for metric, curves in ((SIC, result.sic), (AIC, result.aic)) for s in curves[first].skipped
    ]
    caption = (
        f"{_best_sentence(SIC, {k: c.auc for k, c in result.sic.items()}, labels)}; "
        f"{_best_sentence(AIC, {k: c.auc for k, c in result.aic.items()}, labels)}."
    )
    return Section(
        key="sic_aic",
        title=title,
        blocks=(
            Figure.of(pic_figure(result.sic, labels, show_images), caption=SIC.description),
            Figure.of(pic_figure(result.aic, labels, show_images), caption=AIC.description),
            Table.of_frame(table, caption=caption),
        ),
        description=(
            "Start from a blurred image and reveal the most salient pixels in growing fractions; x is the "
            "information of the revealed image (lossless WebP size), y the normalised softmax score (SIC, median "
            "over images) or whether the top-1 class equals the original's (AIC, mean). "
            + (" ".join(s + "." for s in skipped) + " " if skipped else "") + SIC.reference
        ),
        context=make_context(
            bundle, names, {k: methods.get(k, {}) for k in result.methods},
            {"thresholds": ", ".join(f"{t:g}" for t in result.thresholds),
             "classes explained": _explained_classes(bundle, names, result.targets), **(settings or {})},
        ),
    )


def shap_summary_section(
    bundle: explain.ModelBundle,
    names: Sequence[str],
    display: np.ndarray,
    top5: Sequence[Sequence[tuple[int, str, float]]],
    per_class: np.ndarray,
    summary: Any,
    method: str,
    params: Mapping[str, Any],
    max_features: int = 15,
    title: str = "SHAP summary",
) -> Section:
    """Per image the SHAP image plot of its top-k classes, then across images the
    grid-cell beeswarm, the mean |SHAP| heatmap over the mean image and the ranked
    cells. `per_class` (M, k, H, W) are the maps of the top-k classes of the first M
    images (M <= N: large sets plot only the first few); `summary` an
    `explain.shap_summary.GridSummary` of the explained class over all N images."""
    from explain.plots.shap import beeswarm_figure, cell_importance_figure, shap_image_figure

    label = explain.get_method(method).label
    plotted, k = per_class.shape[:2]
    per_image = tuple(
        Figure.of(shap_image_figure(display[i], per_class[i], [f"{c_name} ({p:.0%})" for _, c_name, p in top5[i][:k]],
                                    image_title=str(names[i])), full_width=True)
        for i in range(plotted)
    )
    mean_image = display.astype(np.float64).mean(axis=0).round().astype(np.uint8)
    ranked = Table(
        ("rank", "cell", "mean |SHAP|"),
        tuple((rank, cell, value) for rank, (cell, value) in enumerate(summary.ranked(10), start=1)),
        caption="Most important grid cells (r1c1 = top left), mean |SHAP| over the images.",
        float_format="{:.3g}",
    )
    rows, cols = summary.grid
    return Section(
        key="shap_summary",
        title=title,
        blocks=(*per_image, Figure.of(beeswarm_figure(summary, max_features=max_features),
                                      caption="Each dot is one image; colour is the cell's mean intensity."),
                Figure.of(cell_importance_figure(summary, mean_image)), ranked),
        description=(
            f"{label} values. Per image{f' (the first {plotted} of {len(names)})' if plotted < len(names) else ''}: "
            "red pixels raise the class score, blue lower it (one symmetric scale per "
            f"image). Across {len(names)} image(s): features are the cells of a {rows} x {cols} grid (the same cell in "
            "every image), each cell's value the sum of its pixels' SHAP values for the explained class."
        ),
        context=make_context(
            bundle, names, {method: params},
            {"grid": f"{rows} x {cols}", "classes per image": k,
             "classes explained": "; ".join(f"{n}: {c}" for n, c in zip(summary.image_names, summary.target_names))},
        ),
    )


def roar_section(summary: Any, settings: Any, title: str = "ROAR: remove and retrain") -> Section:
    """The ROAR (or KAR) curves with the random baseline and the accuracy table, from an
    `explain.roar.RoarSummary` and the `RoarSettings` that produced it. The model is
    the small CNN retrained from scratch, so no bundle is recorded."""
    from explain.plots.curves import roar_figure

    rows = summary.table()
    columns = tuple(rows[0]) if rows else ("method",)
    best = summary.metric.best({c.label: c.auc for c in summary.curves if c.auc is not None})
    caption = f"{summary.metric.name}: {summary.metric.description} ({summary.metric.direction}" + (
        f"; best {best})" if best is not None else ")")
    if not summary.complete:
        caption += f" Partial run: {summary.done}/{summary.total} retrainings."
    registered = {m.key: dict(m.params) for m in settings.methods if m.key in {x.key for x in explain.list_methods()}}
    base = "n/a" if summary.base_accuracy is None else f"{summary.base_accuracy:.3f}"
    return Section(
        key="roar",
        title=title,
        blocks=(Figure.of(roar_figure(summary)), Table(columns, tuple(tuple(r[c] for c in columns) for r in rows), caption)),
        description=(
            f"For each method and fraction, the most important pixels of every train and test image are "
            f"{'kept (the rest replaced' if summary.mode == 'kar' else 'replaced'} by the per-channel mean"
            f"{')' if summary.mode == 'kar' else ''}, the same network is retrained from scratch and its test accuracy "
            f"reported (Hooker et al., NeurIPS 2019). Dataset: {summary.dataset}. Network: {summary.architecture}; "
            f"unmodified test accuracy {base}. The dashed grey line is the random ranking: a faithful method "
            "makes accuracy fall faster than it."
        ),
        context=make_context(
            None, (), registered,
            {"dataset": summary.dataset, "network": summary.architecture, "variant": summary.mode.upper(),
             "fractions": ", ".join(f"{f:.0%}" for f in summary.fractions), "repeats": summary.repeats,
             "seed": settings.seed, "epochs": getattr(settings.recipe, "epochs", "")},
        ),
    )
