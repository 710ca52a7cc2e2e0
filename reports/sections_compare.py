"""Report sections of the model comparison and of the mistakes browser, built from the
plain results of `explain.analyses.compare` and `explain.analyses.mistakes`."""

from __future__ import annotations

from typing import Any

from explain.analyses.compare import DEFAULT_MEASURE, MEASURE_LABELS, ComparisonResult
from explain.analyses.mistakes import MistakesResult
from explain.plots.overlay import DisplaySettings, overlay

from .dispatch import section_builder
from .sections import Block, Figure, ImageGrid, Section, Table, make_context

MAX_IMAGES = 12


@section_builder(ComparisonResult)
def compare_section(result: ComparisonResult, display: DisplaySettings | None = None, measure: str = DEFAULT_MEASURE,
                    max_images: int = MAX_IMAGES, title: str = "Model comparison") -> Section:
    """Per method the grid image x model, then the mean similarity and top-1 agreement of
    every pair of models, and the map drift to the last model."""
    display = display or DisplaySettings()
    rows = range(min(max_images, len(result.image_names)))
    blocks: list[Block] = [
        Figure.of(result.drift_figure(measure), full_width=True,
                  caption=f"Mean {MEASURE_LABELS[measure]} of each model's maps to the last model's, over the images."),
        Table.of_frame(result.pair_table(), caption="Per pair of models: each similarity's mean over the images, and "
                                                    "the fraction of images whose top-1 predictions agree."),
    ]
    for ident, label in result.labels.items():
        blocks.append(ImageGrid(
            column_labels=("Image", *result.models),
            row_labels=tuple(f"{label} · {result.image_names[n]}" for n in rows),
            cells=tuple((result.display[n], *(overlay(result.display[n], result.maps[ident][k, n], display)
                                              for k in range(len(result.models)))) for n in rows),
            captions=tuple((str(result.image_names[n]), *(result.caption(k, n) for k in range(len(result.models))))
                           for n in rows),
            max_columns=min(len(result.models) + 1, 6),
        ))
    disagree = result.disagreements()
    shown = f"the first {len(rows)} of {len(result.image_names)}" if len(rows) < len(result.image_names) else "all"
    return Section(
        key="compare",
        title=title,
        blocks=tuple(blocks),
        description=(
            f"{len(result.models)} models ({', '.join(result.models)}) explained on the same {len(result.image_names)} "
            f"image(s) by {len(result.labels)} method(s); each model explains its own top-1 class. Similarities as in "
            f"the sanity checks (Spearman |map| and signed, SSIM, HOG). The models' top-1 differ on {len(disagree)} "
            "image(s). "
            f"Grids show {shown} images; each cell is captioned with that model's top-1."
        ),
        context=make_context(
            next((c for c in result.cards if c is not None), None), result.image_names,
            result.methods,
            {"models": ", ".join(result.models), "drift measure": MEASURE_LABELS[measure],
             "source": result.source or "models", "colormap": display.colormap},
        ),
    )


@section_builder(MistakesResult)
def mistakes_section(result: MistakesResult, model_index: int | None = None, true: str | None = None,
                     predicted: str | None = None, *, disagree: bool = False, min_confidence: float | None = None,
                     display: DisplaySettings | None = None, max_images: int = MAX_IMAGES,
                     title: str = "Mistakes") -> Section:
    """One model's confusion matrix, its most frequent mistakes, and the images of the
    chosen cell and filters with the predicted and the true class's maps side by side."""
    display = display or DisplaySettings()
    model = len(result.models) - 1 if model_index is None else int(model_index)
    listed = result.listed(model, true, predicted, disagree=disagree, min_confidence=min_confidence)
    own = result.table[result.table["model_index"] == model]
    chosen = []
    if true is not None or predicted is not None:
        chosen.append(f"true {true if true is not None else 'any'} → "
                      f"predicted {predicted if predicted is not None else 'any'}")
    if disagree:
        chosen.append("models disagree")
    if min_confidence is not None:
        chosen.append(f"top-1 probability ≥ {min_confidence:.0%}")
    blocks: list[Block] = [
        Figure.of(result.confusion_figure(model), full_width=True,
                  caption="Rows: true class; columns: predicted class."),
        Table.of_frame(result.mistakes_by_pair(model).head(20), caption="Most frequent mistakes."),
    ]
    picked = listed.head(max_images)
    columns = [f"{label}: {kind}" for label in result.labels.values() for kind in ("predicted", "true")]
    cells, captions = [], []
    for row in picked.itertuples():
        maps = result.image_maps(model, int(row.image_index))
        crop = None if maps is None else maps.display
        line: list[Any] = [crop]
        for ident in result.labels:
            for found in ((maps.predicted, maps.true) if maps is not None else ({}, {})):
                value = found.get(ident)
                line.append(None if value is None or crop is None else overlay(crop, value, display))
        cells.append(tuple(line))
        captions.append((f"true {row.true} · predicted {row.predicted} ({row.probability:.0%})",
                         *(["" for _ in columns])))
    if cells:
        blocks.append(ImageGrid(column_labels=("Image", *columns),
                                row_labels=tuple(str(r.image) for r in picked.itertuples()),
                                cells=tuple(cells), captions=tuple(captions),
                                row_notes=tuple((str(r.top5),) for r in picked.itertuples()),
                                max_columns=min(len(columns) + 1, 5)))
    blocks.append(Table.of_frame(listed[["image", "true", "predicted", "probability", "top5"]].head(200),
                                 caption=f"{len(listed)} image(s) listed"
                                 + (f" ({'; '.join(chosen)})" if chosen else "") + ", most confident first."))
    return Section(
        key="mistakes",
        title=title,
        blocks=tuple(blocks),
        description=(
            f"Mistakes of {result.models[model]}: {int((~own['correct']).sum())} wrong of {len(own)} labelled "
            "image(s). " + result.note
        ),
        context=make_context(
            None, tuple(picked["image"]), result.methods,
            {"model": result.models[model], "cell": chosen[0] if chosen and "→" in chosen[0] else "every mistake",
             "filters": "; ".join(c for c in chosen if "→" not in c) or "none", "source": result.source or "models"},
        ),
    )
