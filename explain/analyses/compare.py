"""Model comparison: two or more models explained on the same images by the same methods.

Per method: the grid image x model of maps; per image and pair of models the four
similarities of the sanity checks (`explain.metrics.similarity`: Spearman |map| and
signed, SSIM, HOG) and whether their top-1 predictions agree; across checkpoints of one
run (the models in order) the "map drift": each model's similarity to the last one.

Two ways in, one result type (`ComparisonResult`, plain arrays and tables):
`ModelComparison` (an analysis: each model explains each image's class as its
`ClassChoice` says, maps stored by content so every other page reuses them) and
`comparison_from_results` (a results directory of `python -m explain evaluate
--save-maps`: the stored maps are read, nothing is computed).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from skimage.transform import resize

from ..jobs.runner import JobContext
from ..methods.cache import Prediction
from ..methods.registry import MethodSpec
from ..metrics.similarity import SIMILARITIES, similarities
from ..models.bundle import ModelCard
from .attribution import check_inputs
from .base import Analysis, register_analysis
from .inputs import ImagesView, PreparedImages, Subject, load_images, store_images
from .maps import iter_maps, maps_passes, stored_maps

DEFAULT_MEASURE = "spearman_abs"
MEASURES = tuple(s.key for s in SIMILARITIES)
MEASURE_LABELS = {s.key: s.label for s in SIMILARITIES}


def common_size(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) maps resized (bilinear) to `shape`: models with other input sizes compare on one grid."""
    if maps.shape[1:] == tuple(shape):
        return maps.astype(np.float32, copy=False)
    resized = [resize(m, shape, order=1, preserve_range=True, anti_aliasing=False) for m in maps]
    return np.stack(resized).astype(np.float32)


def pairwise_similarities(maps: np.ndarray) -> dict[str, np.ndarray]:
    """Every measure of every pair of models per image: `maps` (K, N, H, W) ->
    {measure: (K, K, N)}, symmetric with ones on the diagonal; NaN where a map is missing."""
    k, n = maps.shape[:2]
    out = {key: np.full((k, k, n), np.nan) for key in MEASURES}
    for key in MEASURES:
        for i in range(k):
            out[key][i, i] = 1.0
    for a, b in combinations(range(k), 2):
        for row in range(n):
            if np.isnan(maps[a, row]).any() or np.isnan(maps[b, row]).any():
                continue
            for key, value in similarities(maps[a, row], maps[b, row]).items():
                out[key][a, b, row] = out[key][b, a, row] = value
    return out


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """Models x images x methods, as plain data.

    `maps[ident]` (K, N, H, W) on a common grid (NaN rows until computed); `predictions[k][n]`
    model k's top-k (class, name, probability) of image n (top-1 only when read from a
    results directory); `targets` (K, N) the class each model explained; `display` (N, H, W, 3)
    the crops (the first model's); `similarity[ident][measure]` (K, K, N) when complete."""

    models: tuple[str, ...]
    image_names: tuple[str, ...]
    display: np.ndarray
    labels: Mapping[str, str]
    maps: Mapping[str, np.ndarray]
    predictions: tuple[tuple[Prediction, ...], ...]
    targets: np.ndarray
    cards: tuple[ModelCard | None, ...] = ()
    methods: tuple[MethodSpec, ...] = ()
    source: str = ""
    complete: bool = True
    analysis: "ModelComparison | None" = None

    @classmethod
    def build(cls, models: Sequence[str], image_names: Sequence[str], display: np.ndarray, labels: Mapping[str, str],
              maps: Mapping[str, np.ndarray], predictions: Sequence[Sequence[Prediction]], targets: Any, **extra: Any
              ) -> "ComparisonResult":
        return cls(tuple(models), tuple(image_names), display, dict(labels), maps,
                   tuple(tuple(p) for p in predictions), np.asarray(targets, dtype=np.int64), **extra)

    # ------------------------------------------------------------------ numbers
    @cached_property
    def similarity(self) -> Mapping[str, Mapping[str, np.ndarray]]:
        """{method: {measure: (K, K, N)}}; empty while maps are missing (a partial result)."""
        if not self.complete:
            return {}
        return {ident: pairwise_similarities(m) for ident, m in self.maps.items()}

    @property
    def top1(self) -> np.ndarray:
        """(K, N) each model's top-1 class."""
        return np.array([[row[0][0] for row in model] for model in self.predictions], dtype=np.int64)

    @property
    def agreement(self) -> np.ndarray:
        """(K, K, N): whether two models' top-1 agree on each image."""
        top1 = self.top1
        return top1[:, None, :] == top1[None, :, :]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return list(combinations(range(len(self.models)), 2))

    def disagreements(self) -> list[int]:
        """Images on which any two models' top-1 differ."""
        return [n for n in range(len(self.image_names)) if len(set(self.top1[:, n])) > 1]

    def pair_table(self) -> pd.DataFrame:
        """Per method and pair of models: the mean of each similarity over the images and
        the fraction of images whose top-1 agree."""
        records = []
        agreement = self.agreement
        for ident, measures in self.similarity.items():
            for a, b in self.pairs:
                record: dict[str, Any] = {"method": self.labels[ident], "model A": self.models[a],
                                          "model B": self.models[b]}
                record.update({MEASURE_LABELS[m]: float(np.nanmean(v[a, b])) for m, v in measures.items()})
                record["top-1 agreement"] = float(agreement[a, b].mean())
                records.append(record)
        return pd.DataFrame(records)

    def image_table(self, ident: str, measure: str = DEFAULT_MEASURE) -> pd.DataFrame:
        """Per image and pair: the similarity of the maps and whether the top-1 agree."""
        values, agreement = self.similarity[ident][measure], self.agreement
        records = [{"image": name, "model A": self.models[a], "model B": self.models[b],
                    "top-1 A": self.predictions[a][n][0][1], "top-1 B": self.predictions[b][n][0][1],
                    "top-1 agree": bool(agreement[a, b, n]), MEASURE_LABELS[measure]: float(values[a, b, n])}
                   for n, name in enumerate(self.image_names) for a, b in self.pairs]
        return pd.DataFrame(records)

    def drift(self, measure: str = DEFAULT_MEASURE) -> pd.DataFrame:
        """Map drift: per method and model (in order), the mean similarity of its maps to
        the last model's, over the images (the last model scores 1)."""
        last = len(self.models) - 1
        records = [{"method": self.labels[ident], "model_index": k, "model": self.models[k],
                    "similarity": float(np.nanmean(values[measure][k, last]))}
                   for ident, values in self.similarity.items() for k in range(len(self.models))]
        return pd.DataFrame(records)

    def drift_figure(self, measure: str = DEFAULT_MEASURE) -> Any:
        from ..plots.compare import drift_figure

        return drift_figure(self.drift(measure), MEASURE_LABELS[measure], self.models)

    def similarity_figure(self, ident: str, measure: str = DEFAULT_MEASURE) -> Any:
        from ..plots.compare import pair_matrix_figure

        return pair_matrix_figure(np.nanmean(self.similarity[ident][measure], axis=2), self.models,
                                  f"{self.labels[ident]}: mean {MEASURE_LABELS[measure]}")

    def caption(self, model: int, row: int) -> str:
        """'pred tabby (37%) · explains 281' under one cell of the grid."""
        top = self.predictions[model][row][0]
        explained = int(self.targets[model, row])
        return f"{top[1]} ({top[2]:.0%})" + ("" if explained == top[0] else f" · explains class {explained}")


def image_order_check(subjects: Sequence[Subject]) -> None:
    if len(subjects) < 2:
        raise ValueError("compare at least two models")
    if len({s.digests for s in subjects}) != 1:
        raise ValueError("every model of a comparison must see the same images, in the same order")


@register_analysis
@dataclass(frozen=True)
class ModelComparison(Analysis):
    """`subjects`: one per model (in order: the last is the drift's reference), the same
    images in the same order; each model's explained classes resolved from its own predictions."""

    kind = "compare"

    subjects: tuple[Subject, ...]
    methods: tuple[MethodSpec, ...]

    def __post_init__(self) -> None:
        image_order_check(self.subjects)
        if not self.methods:
            raise ValueError("choose at least one method")

    @property
    def title(self) -> str:
        return (f"Model comparison · {len(self.subjects)} models × {len(self.methods)} method(s) × "
                f"{len(self.subjects[0].images)} image(s)")

    def run(self, inputs: Sequence[PreparedImages], ctx: JobContext) -> Iterator[ComparisonResult]:
        if len(inputs) != len(self.subjects):
            raise ValueError(f"{len(self.subjects)} models to compare, {len(inputs)} prepared")
        views = []
        for k, (subject, prepared) in enumerate(zip(self.subjects, inputs, strict=True)):
            check_inputs(subject, prepared)
            views.append(ImagesView.of(prepared, subject))
            store_images(PrefixedParts(ctx.parts, k), views[-1])
            ctx.parts.put_json(f"card-{k}", prepared.bundle.card.__dict__)
        pairs = zip(self.subjects, inputs, strict=True)
        passes = sum(maps_passes(self.methods, s, int(p.batch.shape[-1])) for s, p in pairs)
        ctx.plan(passes, "passes")
        per_model: list[dict[str, np.ndarray]] = []
        cards = tuple(p.bundle.card for p in inputs)
        for subject, prepared in zip(self.subjects, inputs, strict=True):
            maps: dict[str, np.ndarray] = {}
            for _, _, maps in iter_maps(prepared, subject, self.methods, ctx):  # noqa: B007  (the last is complete)
                pass
            per_model.append(maps)
            yield self._result(views, per_model, cards, complete=len(per_model) == len(self.subjects))

    def _result(self, views: Sequence[ImagesView], per_model: Sequence[Mapping[str, np.ndarray]],
                cards: Sequence[ModelCard | None], complete: bool) -> ComparisonResult:
        shape = views[0].display.shape[1:3]
        n, k = len(views[0].names), len(self.subjects)
        maps = {}
        for spec in self.methods:
            stacked = np.full((k, n, *shape), np.nan, dtype=np.float32)
            for i, model_maps in enumerate(per_model):
                stacked[i] = common_size(model_maps[spec.ident], shape)
            maps[spec.ident] = stacked
        return ComparisonResult.build(
            [s.model_name for s in self.subjects], views[0].names, views[0].display,
            {spec.ident: spec.label for spec in self.methods}, maps, [v.top5 for v in views],
            [s.targets for s in self.subjects], cards=tuple(cards), methods=self.methods, source="models",
            complete=complete, analysis=self,
        )

    def load(self, ctx: JobContext) -> ComparisonResult | None:
        views, cards, per_model = [], [], []
        for k, subject in enumerate(self.subjects):
            view = load_images(PrefixedParts(ctx.parts, k))
            maps = stored_maps(subject, self.methods, ctx)
            if view is None or maps is None:
                return None
            record = ctx.parts.get_json(f"card-{k}")
            views.append(view)
            per_model.append(maps)
            cards.append(ModelCard(**record) if record else None)
        return self._result(views, per_model, cards, complete=True)


class PrefixedParts:
    """A job's parts with names prefixed by the model's position (one images part per model)."""

    def __init__(self, parts: Any, index: int) -> None:
        self.parts, self.prefix = parts, f"m{index}-"

    def put_arrays(self, name: str, arrays: dict) -> None:
        self.parts.put_arrays(self.prefix + name, arrays)

    def put_json(self, name: str, record: Any) -> None:
        self.parts.put_json(self.prefix + name, record)

    def get_arrays(self, name: str) -> Any:
        return self.parts.get_arrays(self.prefix + name)

    def get_json(self, name: str) -> Any:
        return self.parts.get_json(self.prefix + name)


def comparison_from_results(result: Any, methods: Sequence[str] | None = None, models: Sequence[int] | None = None,
                            max_images: int | None = None) -> ComparisonResult:
    """The comparison of the models of a results directory (an `explain.evaluation.EvaluationResult`
    of a run with `--save-maps`), from its stored maps and rows alone: nothing is computed.
    `models`: positions to compare (default all, in order); `max_images`: the first images kept."""
    rows = result.rows
    chosen = list(range(len(result.models))) if models is None else [int(m) for m in models]
    if len(chosen) < 2:
        raise ValueError("compare at least two models of the run")
    idents = [m for m in result.labels if methods is None or m in methods]
    chunk_size = int(result.manifest.get("chunk_size", 1))
    stored: dict[int, dict[str, dict[int, np.ndarray]]] = {}
    display: dict[int, np.ndarray] = {}
    for k in chosen:
        stored[k] = {ident: {} for ident in idents}
        for chunk in sorted({int(i) // chunk_size for i in rows.loc[rows["model_index"] == k, "image_index"]}):
            part = result.store.chunk_maps(k, chunk)
            if part is None:
                continue
            for at, image_index in enumerate(part["image_index"].tolist()):
                display.setdefault(int(image_index), part["display"][at])
                for ident in idents:
                    if f"map:{ident}" in part:
                        stored[k][ident][int(image_index)] = part[f"map:{ident}"][at]
    common = sorted(set.intersection(*(set(stored[k][ident]) for k in chosen for ident in idents))) if idents else []
    if not common:
        raise ValueError(f"{result.root}: no maps kept for these models "
                         "(run python -m explain evaluate with --save-maps)")
    common = common[:max_images] if max_images else common
    first = rows.drop_duplicates(["model_index", "image_index"]).set_index(["model_index", "image_index"])
    predictions = [[((int(first.at[(k, i), "prediction"]), str(first.at[(k, i), "prediction_name"]),
                      float(first.at[(k, i), "probability"])),) for i in common] for k in chosen]
    targets = [[int(first.at[(k, i), "explained_class"]) for i in common] for k in chosen]
    crops = np.stack([rgb_crop(display[i]) for i in common])
    maps = {ident: np.stack([np.stack([stored[k][ident][i] for i in common]) for k in chosen]).astype(np.float32)
            for ident in idents}
    names = [str(first.at[(chosen[0], i), "image"]) for i in common]
    return ComparisonResult.build([result.models[k] for k in chosen], names, crops,
                                  {i: result.labels[i] for i in idents}, maps, predictions, targets,
                                  methods=run_methods(result, idents), source=str(result.root))


def run_methods(result: Any, idents: Sequence[str] | None = None) -> tuple[MethodSpec, ...]:
    """The methods of a results directory's run, as its manifest records them (for report headers)."""
    return tuple(MethodSpec.of(m["key"], m["params"]) for m in result.manifest.get("methods", [])
                 if idents is None or m["ident"] in idents)


def rgb_crop(crop: np.ndarray) -> np.ndarray:
    """A stored crop as uint8 RGB (grey digits repeated over three channels)."""
    crop = np.asarray(crop)
    return np.repeat(crop, 3, axis=-1) if crop.ndim == 3 and crop.shape[-1] == 1 else crop
