"""The mistakes browser: which images a model gets wrong, and why.

For one or more models on labelled images: the confusion matrix (true x predicted);
the images of one cell (a true/predicted pair) with, per method, the map of the
predicted class beside the map of the true class, and the top-5; filters for the
images on which the models disagree and for confidently wrong predictions.

Two ways in, one result type (`MistakesResult`, a table and a map lookup):
`MistakesAnalysis` (an analysis: every model predicts every image; the wrong ones
are explained for both classes, maps stored by content) and `mistakes_from_results`
(a results directory of `python -m explain evaluate`: its rows, and its stored maps
when the run kept them; nothing is computed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from ..jobs.runner import JobContext
from ..methods.registry import MethodSpec
from .attribution import check_inputs
from .base import Analysis, register_analysis
from .compare import PrefixedParts, image_order_check, rgb_crop, run_methods
from .inputs import ImagesView, PreparedImages, Subject, load_images, store_images
from .maps import iter_maps, maps_passes, stored_maps

TABLE_COLUMNS = ("model_index", "model", "image_index", "image", "true", "predicted", "probability", "correct", "top5")


@dataclass(frozen=True)
class ImageMaps:
    """One image as one model saw it: the crop and, per method ident, the map of the
    predicted and of the true class (None where not computed or not stored)."""

    display: np.ndarray
    predicted: Mapping[str, np.ndarray | None]
    true: Mapping[str, np.ndarray | None]


@dataclass(frozen=True, eq=False)
class MistakesResult:
    """`table`: one row per model and image (`TABLE_COLUMNS`; `true` and `predicted` are
    class names, `correct` a bool); `image_maps(model_index, image_index)` its maps;
    `labels` method ident -> label; `note` says what the maps can show."""

    models: tuple[str, ...]
    table: pd.DataFrame
    labels: Mapping[str, str]
    image_maps: Callable[[int, int], ImageMaps | None]
    note: str = ""
    source: str = ""
    methods: tuple[MethodSpec, ...] = ()
    analysis: "MistakesAnalysis | None" = None

    def confusion(self, model_index: int) -> pd.DataFrame:
        """Counts, true classes as rows, predicted as columns, over the classes seen."""
        rows = self.table[self.table["model_index"] == model_index]
        classes = sorted(set(rows["true"]) | set(rows["predicted"]), key=_class_order)
        return pd.crosstab(rows["true"], rows["predicted"]).reindex(index=classes, columns=classes, fill_value=0)

    def confusion_figure(self, model_index: int) -> Any:
        from ..plots.compare import confusion_figure

        return confusion_figure(self.confusion(model_index), f"Confusion matrix of {self.models[model_index]}")

    def disagreements(self) -> set[int]:
        """Images (`image_index`) on which the models' top-1 predictions differ."""
        counts = self.table.groupby("image_index")["predicted"].nunique()
        return set(counts[counts > 1].index.tolist())

    def mistakes_by_pair(self, model_index: int) -> pd.DataFrame:
        """(true, predicted, images) of every off-diagonal cell, most frequent first."""
        rows = self.table[(self.table["model_index"] == model_index) & ~self.table["correct"]]
        counts = rows.groupby(["true", "predicted"]).size().rename("images").reset_index()
        return counts.sort_values(["images", "true", "predicted"], ascending=[False, True, True], ignore_index=True)

    def listed(self, model_index: int, true: str | None = None, predicted: str | None = None, *,
               wrong_only: bool = True, disagree: bool = False, min_confidence: float | None = None) -> pd.DataFrame:
        """The images of one model, narrowed to a cell (`true`, `predicted`; None = any), to
        the wrong ones, to those the models disagree on, to a top-1 probability of at least
        `min_confidence` ("confidently wrong" with `wrong_only`); most confident first."""
        rows = self.table[self.table["model_index"] == model_index]
        if wrong_only:
            rows = rows[~rows["correct"]]
        if true is not None:
            rows = rows[rows["true"] == true]
        if predicted is not None:
            rows = rows[rows["predicted"] == predicted]
        if disagree:
            rows = rows[rows["image_index"].isin(self.disagreements())]
        if min_confidence is not None:
            rows = rows[rows["probability"] >= min_confidence]
        return rows.sort_values(["probability", "image_index"], ascending=[False, True])


def _class_order(name: str) -> tuple:
    """Digits in numeric order, names alphabetically."""
    return (0, int(name), "") if str(name).isdigit() else (1, 0, str(name))


def _top5_text(top5: Sequence[tuple[int, str, float]]) -> str:
    return " · ".join(f"{name} {p:.0%}" for _, name, p in top5)


# ---------------------------------------------------------------------- the analysis
@register_analysis
@dataclass(frozen=True)
class MistakesAnalysis(Analysis):
    """`subjects`: one per model, each explaining the images' labelled classes (build them with
    `ClassChoice("label")`), the same images in the same order; `methods` explain the wrong
    images of each model (at most `max_explained` per model, most confident first) for the
    predicted and the true class."""

    kind = "mistakes"

    subjects: tuple[Subject, ...]
    methods: tuple[MethodSpec, ...]
    max_explained: int = 24

    def __post_init__(self) -> None:
        if len(self.subjects) > 1:
            image_order_check(self.subjects)
        if not self.subjects:
            raise ValueError("choose a model")
        if self.max_explained < 0:
            raise ValueError("the number of wrong images to explain cannot be negative")

    @property
    def title(self) -> str:
        return f"Mistakes · {len(self.subjects)} model(s) × {len(self.subjects[0].images)} labelled image(s)"

    def explained_subjects(self, view: ImagesView, subject: Subject) -> tuple[Subject, Subject]:
        """(predicted, true) classes of this model's wrong images that get maps."""
        wrong = [n for n in range(len(subject.images)) if view.top5[n][0][0] != subject.targets[n]]
        wrong = sorted(wrong, key=lambda n: -view.top5[n][0][2])[: self.max_explained]
        refs = tuple(subject.images[n] for n in wrong)
        predicted = Subject(subject.model_id, subject.model_name, refs, tuple(int(view.top5[n][0][0]) for n in wrong))
        true = Subject(subject.model_id, subject.model_name, refs, tuple(subject.targets[n] for n in wrong))
        return predicted, true

    def run(self, inputs: Sequence[PreparedImages], ctx: JobContext) -> Iterator[MistakesResult]:
        if len(inputs) != len(self.subjects):
            raise ValueError(f"{len(self.subjects)} models, {len(inputs)} prepared")
        views = []
        for k, (subject, prepared) in enumerate(zip(self.subjects, inputs, strict=True)):
            check_inputs(subject, prepared)
            views.append(ImagesView.of(prepared, subject))
            store_images(PrefixedParts(ctx.parts, k), views[-1])
        plans = [self.explained_subjects(v, s) for v, s in zip(views, self.subjects, strict=True)]
        size = int(inputs[0].batch.shape[-1])
        ctx.plan(sum(maps_passes(self.methods, s, size) for pair in plans for s in pair if s.images), "passes")
        found: list[tuple[dict, dict]] = []
        yield self._result(views, plans, [({}, {})] * len(views))
        for prepared, pair in zip(inputs, plans, strict=True):
            maps = []
            for subject in pair:
                latest: dict[str, np.ndarray] = {}
                if subject.images:
                    chosen = prepared.select(subject.digests)
                    for _, _, latest in iter_maps(chosen, subject, self.methods, ctx):  # noqa: B007  (the last is complete)
                        pass
                maps.append(latest)
            found.append((maps[0], maps[1]))
        yield self._result(views, plans, found)

    def _result(self, views: Sequence[ImagesView], plans: Sequence[tuple[Subject, Subject]],
                maps: Sequence[tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]]) -> MistakesResult:
        records = []
        for k, (view, subject) in enumerate(zip(views, self.subjects, strict=True)):
            for n, name in enumerate(view.names):
                top = view.top5[n][0]
                records.append({"model_index": k, "model": subject.model_name, "image_index": n, "image": name,
                                "true": view.target_names[n], "predicted": top[1], "probability": float(top[2]),
                                "correct": bool(top[0] == subject.targets[n]), "top5": _top5_text(view.top5[n])})
        positions = [{ref.digest: i for i, ref in enumerate(pair[0].images)} for pair in plans]

        def image_maps(model_index: int, image_index: int) -> ImageMaps | None:
            view, subject = views[model_index], self.subjects[model_index]
            at = positions[model_index].get(subject.images[image_index].digest)
            predicted, true = maps[model_index]

            def pick(found: Mapping[str, np.ndarray]) -> dict[str, np.ndarray | None]:
                return {s.ident: None if at is None or s.ident not in found else found[s.ident][at]
                        for s in self.methods}

            return ImageMaps(view.display[image_index], pick(predicted), pick(true))

        return MistakesResult(tuple(s.model_name for s in self.subjects), pd.DataFrame(records, columns=TABLE_COLUMNS),
                              {s.ident: s.label for s in self.methods}, image_maps,
                              note=f"Maps for the {self.max_explained} most confident mistakes of each model.",
                              source="models", methods=self.methods, analysis=self)

    def load(self, ctx: JobContext) -> MistakesResult | None:
        found_views = [load_images(PrefixedParts(ctx.parts, k)) for k in range(len(self.subjects))]
        views = [v for v in found_views if v is not None]
        if len(views) < len(found_views):
            return None
        plans = [self.explained_subjects(v, s) for v, s in zip(views, self.subjects, strict=True)]
        found: list[tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]] = []
        for pair in plans:
            predicted, true = (stored_maps(s, self.methods, ctx) if s.images else {} for s in pair)
            if predicted is None or true is None:
                return None
            found.append((predicted, true))
        return self._result(views, plans, found)


# ---------------------------------------------------------------------- a results directory
def mistakes_from_results(result: Any) -> MistakesResult:
    """The mistakes of every model of a results directory (an `explain.evaluation.EvaluationResult`):
    its rows (one per model and image), and the maps it kept (`--save-maps`): of the
    predicted class when it explained each image's top-1, of the true class when it
    explained the label. Images without a label that names a model class are left out."""
    rows = result.rows
    rows = rows[rows["correct"].notna()].drop_duplicates(["model_index", "image_index"])
    label_mode = result.manifest.get("settings", {}).get("class_mode") == "label"
    table = pd.DataFrame({
        "model_index": rows["model_index"].astype(int), "model": rows["model"],
        "image_index": rows["image_index"].astype(int), "image": rows["image"], "true": _true_names(rows),
        "predicted": rows["prediction_name"].astype(str),
        "probability": rows["probability"].astype(float), "correct": rows["correct"].astype(bool),
        "top5": [f"{name} {p:.0%}" for name, p in zip(rows["prediction_name"], rows["probability"], strict=True)],
    }, columns=list(TABLE_COLUMNS)).reset_index(drop=True)
    chunk_size = int(result.manifest.get("chunk_size", 1))
    cache: dict[tuple[int, int], dict | None] = {}

    def image_maps(model_index: int, image_index: int) -> ImageMaps | None:
        key = (model_index, image_index // chunk_size)
        if key not in cache:
            cache[key] = result.store.chunk_maps(*key)
        part = cache[key]
        if part is None:
            return None
        at = np.flatnonzero(part["image_index"] == image_index)
        if not len(at):
            return None
        stored = {ident: part[f"map:{ident}"][at[0]] if f"map:{ident}" in part else None for ident in result.labels}
        missing = {ident: None for ident in result.labels}
        crop = rgb_crop(part["display"][at[0]])
        return ImageMaps(crop, missing if label_mode else stored, stored if label_mode else missing)

    kept = "the true class's maps (the run explained each image's label)" if label_mode else \
        "the predicted class's maps (the run explained each image's top-1)"
    return MistakesResult(tuple(result.models), table, dict(result.labels), image_maps,
                          note=f"Read from the run {result.root.name}: {kept}, when it kept maps (--save-maps).",
                          source=str(result.root), methods=run_methods(result))


def _true_names(rows: pd.DataFrame) -> list[str]:
    """Each row's labelled class under the model's name for it (as predictions are named),
    so the confusion matrix has one axis of classes; the folder label where no
    prediction of that model ever named the class."""
    predictions = zip(rows["model_index"], rows["prediction"], rows["prediction_name"], strict=True)
    names = {(int(m), int(p)): str(n) for m, p, n in predictions}
    return [names.get((int(m), int(i)), str(label)) if i == i and i is not None else str(label)
            for m, i, label in zip(rows["model_index"], rows["label_index"], rows["label"], strict=True)]
