"""One unit of an evaluation: one model on one chunk of images. Both executors (local
and Ray) call `evaluate_chunk`, so the same settings give the same rows whichever runs.

Per chunk: the model's prediction for every image, the explained class (top-1 or the
label), each method's maps (`explain.attribute`, batched on the device), and each
registered metric on them, run by the metric analyses' executor
(`explain.metrics.executor`: any family of the registry, so metrics added later flow in:
a `Metric` per method, a `Comparison` over every method's maps, its per-method summary
as the method's score). Every score's per-image AUC (`Curves.aucs`) becomes a column
`auc_<score key>`; the curves go to their own table.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import torch

from ..data.datasets import label_indices
from ..data.ground_truth import GroundTruthError, model_view
from ..data.images import ImageLoadError, NamedImage
from ..methods.registry import MethodSpec, MethodUnavailableError, attribute, get_method
from ..metrics.executor import MetricBatch, PassCounter, every_curve
from ..metrics.executor import metric_passes as family_passes
from ..metrics.registry import get_metric
from ..models.bundle import ModelBundle
from .sources import RawImage

SCORE_PREFIX = "auc_"

FIXED_COLUMNS = [
    ("model_index", pa.int32()),
    ("model", pa.string()),
    ("model_id", pa.string()),
    ("model_path", pa.string()),
    ("image_index", pa.int64()),
    ("image", pa.string()),
    ("image_id", pa.string()),
    ("label", pa.string()),
    ("label_index", pa.int64()),
    ("prediction", pa.int64()),
    ("prediction_name", pa.string()),
    ("probability", pa.float64()),
    ("correct", pa.bool_()),
    ("explained_class", pa.int64()),
    ("explained_name", pa.string()),
    ("explained_probability", pa.float64()),
    ("method", pa.string()),
    ("method_label", pa.string()),
]
CURVE_SCHEMA = pa.schema([
    ("model_index", pa.int32()), ("image_index", pa.int64()), ("method", pa.string()), ("score", pa.string()),
    ("x", pa.list_(pa.float64())), ("y", pa.list_(pa.float64())),
])


def score_keys(metrics: Sequence[Any]) -> list[str]:
    """The score keys of the chosen metric families, in registry order within each."""
    return [info.key for choice in metrics for info in get_metric(choice.key).scores]


def rows_schema(keys: Sequence[str]) -> pa.Schema:
    """One row per model x image x method: the fixed columns, then one AUC per score
    (NaN where the metric skipped the image) and why any was skipped."""
    return pa.schema(FIXED_COLUMNS + [(SCORE_PREFIX + k, pa.float64()) for k in keys] + [("skipped", pa.string())])


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """What one (model, chunk) gives: its rows and curves, its maps and crops when kept,
    the model's card, the images left out (and why) and its timing."""

    model_index: int
    chunk: int
    rows: pa.Table
    curves: pa.Table
    maps: dict[str, np.ndarray] | None
    card: dict[str, Any]
    notes: tuple[str, ...]
    images: int
    seconds: float


def chunk_passes(bundle: ModelBundle, methods: Sequence[MethodSpec], metrics: Sequence[Any], n: int) -> int:
    """Forward(+backward) passes a chunk of `n` images costs: predictions, maps, metrics."""
    size = bundle.input_size
    return n + sum(get_method(s.key).evals_per_image(s.resolved, size) for s in methods) * n + metric_passes(
        methods, metrics, n, size)


def metric_passes(methods: Sequence[MethodSpec], metrics: Sequence[Any], n: int, size: int) -> int:
    """Model passes the chosen metrics cost on `n` images (see `executor.metric_passes`)."""
    return sum(family_passes(get_metric(choice.key), choice.resolved, methods, n, size) for choice in metrics)


@dataclass(frozen=True, eq=False)
class DecodedChunk:
    """A chunk's images that decoded (and, when the label is explained, have a label that
    names a model class): the images, their raw entries, label indices, and why others were left out."""

    images: list[NamedImage]
    kept: list[RawImage]
    label_index: list[int | None]
    notes: list[str]


def decode_chunk(raws: Sequence[RawImage], bundle: ModelBundle, class_mode: str) -> DecodedChunk:
    """Decode a chunk's images; unreadable ones (and, for `class_mode` "label", unlabelled
    ones) are left out with a note each."""
    notes: list[str] = []
    images, kept = [], []
    for raw in raws:
        try:
            images.append(raw.decode())
            kept.append(raw)
        except ImageLoadError as exc:
            notes.append(f"{raw.name}: {exc}")
    label_index = label_indices([r.label for r in kept], bundle.class_names)
    if class_mode == "label":
        usable = [i for i, t in enumerate(label_index) if t is not None]
        notes += [f"{kept[i].name}: its label {kept[i].label!r} names no class of {bundle.name}"
                  for i in range(len(kept)) if label_index[i] is None]
        return DecodedChunk([images[i] for i in usable], [kept[i] for i in usable], [label_index[i] for i in usable],
                            notes)
    return DecodedChunk(images, kept, label_index, notes)


def chunk_maps(bundle: ModelBundle, batch: torch.Tensor, targets: torch.Tensor, methods: Sequence[MethodSpec],
               progress: Callable[[int], None] | None, notes: list[str]) -> dict[str, np.ndarray]:
    """Each available method's maps of the batch by ident; an unavailable one gets a note."""
    maps: dict[str, np.ndarray] = {}
    for spec in methods:
        method = get_method(spec.key)
        try:
            method.check_available(bundle)
        except MethodUnavailableError as exc:
            notes.append(f"{spec.label} on {bundle.name}: {exc}")
            continue
        per_image = method.evals_per_image(spec.resolved, bundle.input_size)
        maps[spec.ident] = attribute(bundle, batch, spec.key, targets.tolist(),
                                     progress=_counter(progress, per_image), **spec.resolved)
    return maps


def evaluate_chunk(
    settings: Any,
    bundle: ModelBundle,
    model_index: int,
    model_path: str,
    chunk: int,
    raws: Sequence[RawImage],
    progress: Callable[[int], None] | None = None,
) -> ChunkResult:
    """Rows, curves (and maps when `settings.save_maps`) of one model on one chunk.
    `progress(passes)` is called with the model passes done since its last call."""
    started = time.perf_counter()
    keys = score_keys(settings.metrics)
    decoded = decode_chunk(raws, bundle, settings.class_mode)
    images, kept, label_index, notes = decoded.images, decoded.kept, decoded.label_index, decoded.notes
    columns: dict[str, list] = {name: [] for name, _ in FIXED_COLUMNS}
    columns.update({SCORE_PREFIX + k: [] for k in keys})
    columns["skipped"] = []
    curve_columns: dict[str, list] = {field.name: [] for field in CURVE_SCHEMA}
    saved: dict[str, np.ndarray] | None = {} if settings.save_maps else None
    if images:
        batch = bundle.preprocess_batch([im.image for im in images])
        masks = chunk_masks(bundle, images, kept, notes) if settings.data.has_truth else None
        digests = tuple(im.digest for im in images)
        probs = bundle.probabilities(batch).double()
        if progress is not None:
            progress(len(images))
        confidence, prediction = probs.max(dim=1)
        targets = (
            prediction.clone() if settings.class_mode == "top1" else torch.as_tensor(label_index, dtype=torch.long)
        )
        names = bundle.class_names
        base = {
            "model_index": model_index, "model": bundle.name, "model_id": bundle.model_id, "model_path": model_path,
        }
        all_maps = chunk_maps(bundle, batch, targets, settings.methods, progress, notes)
        if saved is not None:
            saved["display"] = bundle.to_display(batch)
            saved["image_index"] = np.array([r.index for r in kept], dtype=np.int64)
            saved.update({f"map:{ident}": maps for ident, maps in all_maps.items()})
        explained = [spec for spec in settings.methods if spec.ident in all_maps]
        scores = {spec.ident: {k: np.full(len(images), np.nan) for k in keys} for spec in explained}
        reasons: dict[str, list[list[str]]] = {spec.ident: [[] for _ in images] for spec in explained}
        metric_batch = MetricBatch(bundle, batch, targets, digests, masks)
        for choice in settings.metrics:
            metric = get_metric(choice.key)
            for ident, key, curves in every_curve(metric, choice.resolved, metric_batch, all_maps, explained, progress):
                for unit, at in enumerate(curves.kept):
                    scores[ident][key][at] = curves.aucs[unit]
                    _add_curve(curve_columns, model_index, kept[at].index, ident, key, curves.x, curves.curves[unit])
                for skip in curves.skipped:
                    reasons[ident][skip.index].append(f"{key}: {skip.reason}")
        for spec in explained:
            for i, raw in enumerate(kept):
                t, p = int(targets[i]), int(prediction[i])
                row = {
                    **base,
                    "image_index": raw.index,
                    "image": raw.name,
                    "image_id": digests[i],
                    "label": raw.label,
                    "label_index": label_index[i],
                    "prediction": p,
                    "prediction_name": names[p],
                    "probability": float(confidence[i]),
                    "correct": None if label_index[i] is None else label_index[i] == p,
                    "explained_class": t,
                    "explained_name": names[t],
                    "explained_probability": float(probs[i, t]),
                    "method": spec.ident,
                    "method_label": spec.label,
                }
                for name, value in row.items():
                    columns[name].append(value)
                for k in keys:
                    columns[SCORE_PREFIX + k].append(float(scores[spec.ident][k][i]))
                columns["skipped"].append("; ".join(reasons[spec.ident][i]))
    card = bundle.card.__dict__ | {"batch_size": bundle.batch_size}
    rows = stable_sort(pa.Table.from_pydict(columns, schema=rows_schema(keys)), settings.methods)
    rows = rows.replace_schema_metadata({"card": json.dumps(card), "notes": json.dumps(notes)})  # travel with the part
    curves = pa.Table.from_pydict(curve_columns, schema=CURVE_SCHEMA)
    return ChunkResult(model_index, chunk, rows, curves, saved, card, tuple(notes), len(raws),
                       time.perf_counter() - started)


def chunk_masks(bundle: ModelBundle, images: Sequence[NamedImage], raws: Sequence[RawImage],
                notes: list[str]) -> np.ndarray:
    """(N, H, W) ground-truth masks in the model's view; all False (and a note) for an
    image whose ground truth is missing or unusable."""
    size = bundle.input_size
    masks = np.zeros((len(images), size, size), dtype=bool)
    for i, (image, raw) in enumerate(zip(images, raws, strict=False)):
        try:
            masks[i] = model_view(raw.mask(image.image.size), bundle.crop)
        except GroundTruthError as exc:
            notes.append(str(exc))
    return masks


def _add_curve(columns: dict[str, list], model_index: int, image_index: int, method: str, score: str,
               x: np.ndarray, y: np.ndarray) -> None:
    columns["model_index"].append(model_index)
    columns["image_index"].append(image_index)
    columns["method"].append(method)
    columns["score"].append(score)
    columns["x"].append(np.asarray(x, dtype=np.float64))
    columns["y"].append(np.asarray(y, dtype=np.float64))


def _counter(progress: Callable[[int], None] | None, passes_per_unit: int) -> PassCounter | None:
    """A method's (done, total) images as model passes done since its last call, for `progress`."""
    return None if progress is None else PassCounter(progress, passes_per_unit)


def stable_sort(rows: pa.Table, methods: Sequence[MethodSpec]) -> pa.Table:
    """Rows in the settings' order: model, image, then method as the settings list them."""
    order = {spec.ident: i for i, spec in enumerate(methods)}
    rank = pa.array([order.get(m, len(order)) for m in rows.column("method").to_pylist()], pa.int32())
    return rows.append_column("_rank", rank).sort_by(
        [("model_index", "ascending"), ("image_index", "ascending"), ("_rank", "ascending")]).drop_columns(["_rank"])

