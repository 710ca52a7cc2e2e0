"""Performance information curves: SIC and AIC (Kapishnikov et al., "XRAI", ICCV 2019).

Follows the procedure of the PAIR `saliency` package (`saliency.metrics.pic`) and
agrees with it on the same image, map, seed mask and thresholds:

- the "blurred" image keeps the revealed pixels (the top `threshold` fraction of the
  map, plus a small random set of seed pixels and the four corners) and fills the
  others by linear interpolation over the Delaunay triangulation of the kept pixels;
- the information of an image is its lossless WebP size;
- information and prediction are normalised between the fully blurred image (seed
  pixels only) and the original, clipped to [0, 1]; SIC's prediction is the softmax of
  the explained class, AIC's is 1 when the top-1 class equals the original's, else 0;
  the prediction is kept non-decreasing (the paper's choice);
- each image's points, with (0, 0) and (1, 1), are interpolated linearly on a common x
  grid; SIC aggregates the images by the median, AIC by the mean, and the AUC is the
  trapezoid area of the aggregate curve.

Images whose fully blurred version is not less informative than the original, or
scores at least as high, or whose original scores below `min_pred_value`, are skipped
and reported, as the reference does.

Why it is faster than the reference while giving the same pixels: one triangulation
per mask for all channels (the reference triangulates once per channel), interpolation
values computed exactly from integer barycentric coordinates after locating pixels
by rasterising the triangles (scipy's walk is slow on grid points), the
original and fully blurred images shared by all methods and by SIC and AIC, and the
model run on batches of partially revealed images instead of one at a time.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import Delaunay

from ..methods.registry import resolve_targets
from ..models.bundle import ModelBundle
from ..methods.registry import Param
from .base import Curves, MetricInfo, Skipped
from .batching import forward_batch_size
from .registry import Metric, MetricInput, Strip, register_metric

ProgressFn = Callable[[int, int], None]

DEFAULT_THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.10, 0.13, 0.21, 0.34, 0.5, 0.75)
DEFAULT_SEED_FRACTION = 0.01
DEFAULT_NUM_POINTS = 1000

_REFERENCE = "Kapishnikov, Bolukbasi, Viégas, Terry. XRAI: Better Attributions Through Regions. ICCV 2019."
SIC = MetricInfo(
    key="sic",
    name="SIC AUC",
    higher_is_better=True,
    x_label="normalised information (lossless WebP size)",
    y_label="normalised softmax score (median over images)",
    description="Softmax information curve: how much of the class score comes back as the most salient pixels are "
                "revealed.",
    reference=_REFERENCE,
    aggregate="median",
    score="aggregate_auc",
)
AIC = MetricInfo(
    key="aic",
    name="AIC AUC",
    higher_is_better=True,
    x_label="normalised information (lossless WebP size)",
    y_label="accuracy: top-1 equals the original's (mean over images)",
    description="Accuracy information curve: how soon the model's original top-1 decision comes back as salient "
                "pixels are revealed.",
    reference=_REFERENCE,
    score="aggregate_auc",
)


@dataclass(frozen=True, eq=False)
class PicResult:
    sic: dict[str, Curves]
    aic: dict[str, Curves]
    thresholds: tuple[float, ...]
    targets: np.ndarray
    original_classes: np.ndarray

    @property
    def methods(self) -> list[str]:
        return list(self.sic)


@dataclass(frozen=True, eq=False)
class PicStrip:
    """What the model saw for one image and map: the fully blurred image, the partially
    revealed images at each threshold, the original; with their normalised information
    and the softmax score of the explained class."""

    thresholds: tuple[float, ...]
    images: np.ndarray
    information: np.ndarray
    scores: np.ndarray


def random_seed_masks(
    count: int, height: int, width: int, fraction: float = DEFAULT_SEED_FRACTION, seed: int = 0
) -> np.ndarray:
    """(count, H, W) boolean masks with `int(H * W * fraction)` random pixels each: the
    seed of each image's fully blurred version. Use the same masks for every method."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, height * width), dtype=bool)
    for mask in masks:
        mask[rng.choice(height * width, size=int(height * width * fraction), replace=False)] = True
    return masks.reshape(count, height, width)


def webp_size(image: np.ndarray) -> int:
    """Bytes of the lossless WebP encoding of a uint8 image (H, W, 3), (H, W, 1) or
    (H, W): its estimated information."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(
        buffer, format="webp", lossless=True, quality=100)
    return buffer.tell()


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def cpu_pool() -> ThreadPoolExecutor:
    """The process's threads for the CPU side of SIC/AIC (interpolation, WebP): Qhull,
    NumPy and Pillow's WebP encoder release the GIL, so they run on all cores at once.
    As many threads as torch's intra-op setting when first used (a Ray actor sets that
    to its CPUs); shared by every run in the process, so concurrent runs share cores."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()), thread_name_prefix="pic")
        return _POOL


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], lookahead: int) -> Iterator[Any]:
    """`map(fn, items)` on `cpu_pool()`, results in order, at most `lookahead` items
    in flight (memory stays bounded; the caller works on earlier results meanwhile)."""
    pool = cpu_pool()
    pending: deque = deque()
    source = iter(items)
    try:
        for item in itertools.islice(source, max(1, lookahead)):
            pending.append(pool.submit(fn, item))
        while pending:
            result = pending.popleft().result()
            for item in itertools.islice(source, 1):
                pending.append(pool.submit(fn, item))
            yield result
    finally:
        for future in pending:
            future.cancel()


def blurred_image(image: np.ndarray, pixel_mask: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) image with the pixels outside `pixel_mask` (and its four corners)
    linearly interpolated from those inside; pixel for pixel the reference's
    `create_blurred_image`."""
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    squeeze = image.ndim == 2
    full = image[..., None] if squeeze else image
    height, width = pixel_mask.shape
    mask = pixel_mask.copy()
    mask[[0, 0, height - 1, height - 1], [0, width - 1, 0, width - 1]] = True
    if mask.all():
        return image.copy()
    known = np.argwhere(mask)
    unknown = np.argwhere(~mask)
    values = full[mask].astype(np.int64)  # same row-major order as `known`
    triangulation = Delaunay(known)
    interpolated = _interpolate_exact(triangulation, known, values, unknown)
    bad = ~np.isfinite(interpolated).all(axis=1)
    if bad.any():  # pixels the exact path could not place: scipy's own interpolator
        interpolated[bad] = LinearNDInterpolator(triangulation, values.astype(np.float64))(
            unknown[bad].astype(np.float64)
        )
        still = ~np.isfinite(interpolated)
        interpolated[still] = np.broadcast_to(full.mean(axis=(0, 1)), interpolated.shape)[still]
    result = full.astype(np.float32) * mask[..., None]
    result[~mask] = interpolated  # float64 -> float32 then rounding, as the reference does
    result = np.round(result).astype(np.uint8)
    return result[..., 0] if squeeze else result


def _interpolate_exact(
    triangulation: Delaunay, known: np.ndarray, values: np.ndarray, unknown: np.ndarray
) -> np.ndarray:
    """Linear interpolation on the given triangles at the `unknown` integer pixels, from
    integer barycentric numerators (exact) and one division; NaN where no triangle was
    found. Pixels are located by rasterising each triangle's bounding box: any
    triangle that holds a pixel (several do on shared edges) gives the same value,
    because the rational value is the same and division rounds correctly."""
    simplices = triangulation.simplices
    corners = known[simplices]  # (T, 3, 2) integer (row, col)
    height, width = int(known[:, 0].max()) + 1, int(known[:, 1].max()) + 1
    owner = _rasterise(corners, unknown, height, width)
    simplex = owner[unknown[:, 0] * width + unknown[:, 1]]
    out = np.full((len(unknown), values.shape[1]), np.nan)
    found = simplex >= 0
    vertex = simplices[simplex[found]]
    a, b, c = (known[vertex[:, j]] for j in range(3))
    p = unknown[found]
    det = _cross(b - a, c - a)
    wb = _cross(p - a, c - a)
    wc = _cross(b - a, p - a)
    wa = det - wb - wc
    numerator = (
        wa[:, None] * values[vertex[:, 0]] + wb[:, None] * values[vertex[:, 1]] + wc[:, None] * values[vertex[:, 2]]
    )
    out[found] = numerator / det[:, None]
    return out


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _rasterise(corners: np.ndarray, unknown: np.ndarray, height: int, width: int, chunk: int = 4_000_000) -> np.ndarray:
    """Flat (H*W,) index of a triangle containing each unknown pixel (edges included), -1 elsewhere."""
    owner = np.full(height * width, -1, dtype=np.int64)
    is_unknown = np.zeros(height * width, dtype=bool)
    is_unknown[unknown[:, 0] * width + unknown[:, 1]] = True
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    det = _cross(b - a, c - a)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    extent = hi - lo + 1
    # A triangle within a 2x2 box holds only its own (known) corners.
    useful = np.flatnonzero((det != 0) & (extent > 2).any(axis=1))
    sizes = extent[useful, 0] * extent[useful, 1]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    start = 0
    while start < len(useful):
        stop = int(np.searchsorted(bounds, bounds[start] + chunk, side="right")) - 1
        stop = max(stop, start + 1)
        ids = np.repeat(useful[start:stop], sizes[start:stop])
        offset = np.arange(bounds[stop] - bounds[start]) - np.repeat(
            bounds[start:stop] - bounds[start], sizes[start:stop]
        )
        cols = extent[ids, 1]
        rows = lo[ids, 0] + offset // cols
        cols = lo[ids, 1] + offset % cols
        flat = rows * width + cols
        keep = is_unknown[flat]
        ids, rows, cols, flat = ids[keep], rows[keep], cols[keep], flat[keep]
        p = np.stack([rows, cols], axis=1)
        sign = np.sign(det[ids])
        inside = (
            (_cross(b[ids] - a[ids], p - a[ids]) * sign >= 0)
            & (_cross(c[ids] - b[ids], p - b[ids]) * sign >= 0)
            & (_cross(a[ids] - c[ids], p - c[ids]) * sign >= 0)
        )
        owner[flat[inside]] = ids[inside]
        start = stop
    return owner


def _model_input(bundle: ModelBundle, images_uint8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(bundle.mean).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std).view(1, -1, 1, 1)
    return (x - mean) / std


def _probabilities(bundle: ModelBundle, images_uint8: np.ndarray) -> np.ndarray:
    return bundle.probabilities(_model_input(bundle, images_uint8)).numpy().astype(np.float64)


def _skip_reason(
    original_pred: float, blurred_pred: float, original_info: int, blurred_info: int, min_pred_value: float
) -> str | None:
    """Why the reference would refuse this image (its checks, in its order), or None."""
    if original_pred < min_pred_value:
        return f"score on the original image {original_pred:.3f} is below the minimum {min_pred_value:.3f}"
    if blurred_info >= original_info:
        return f"the fully blurred image is not less informative ({blurred_info} >= {original_info} bytes)"
    if blurred_pred >= original_pred:
        return f"the fully blurred image scores at least as high ({blurred_pred:.3f} >= {original_pred:.3f})"
    return None


def reveal_mask(saliency: np.ndarray, seed_mask: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels kept at `threshold`: the top fraction of the map (quantile rule of the
    reference, so ties at the cut are all kept) plus the seed pixels."""
    return (saliency >= np.quantile(saliency, 1 - threshold)) | seed_mask


def pic_curve(
    information: np.ndarray,
    predictions: np.ndarray,
    keep_monotonous: bool = True,
    num_data_points: int = DEFAULT_NUM_POINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """One image's curve on the common grid from its normalised (information, prediction)
    points at the thresholds; (0, 0) and (1, 1) are added, the grid ends at x = 1."""
    preds = np.maximum.accumulate(np.maximum(predictions, 0.0)) if keep_monotonous else predictions
    xs = np.concatenate([information, [0.0, 1.0]])
    ys = np.concatenate([preds, [0.0, 1.0]])
    order = np.argsort(xs, kind="mergesort")  # what scipy's interp1d does before np.interp
    grid = np.linspace(0.0, 1.0, num_data_points, endpoint=False)
    curve = np.interp(grid, xs[order], ys[order])
    return np.append(grid, 1.0), np.append(curve, 1.0)


@dataclass(frozen=True, eq=False)
class PicReference:
    """What SIC/AIC of every method share for a batch: the originals as the model sees
    them (uint8), their fully blurred versions, both images' information and
    predictions, the explained and original classes, and the images each metric skips."""

    originals: np.ndarray
    fully_blurred: np.ndarray
    original_info: np.ndarray
    blurred_info: np.ndarray
    targets: np.ndarray
    original_classes: np.ndarray
    ends: dict[str, tuple[np.ndarray, np.ndarray]]  # per metric: prediction on the original, on the fully blurred
    skipped: dict[str, list[Skipped]]


def pic_reference(
    bundle: ModelBundle, images: torch.Tensor, seed_masks: np.ndarray, target: int | Sequence[int] | None = None,
    min_pred_value: float = 0.0,
) -> PicReference:
    """The shared part of SIC/AIC for `images` (N, C, H, W) and their seed masks."""
    n = images.shape[0]
    originals = bundle.to_display(images)
    fully_blurred = np.stack(list(ordered_map(lambda i: blurred_image(originals[i], seed_masks[i]), range(n), 2 * n)))
    sizes = list(ordered_map(webp_size, [*originals, *fully_blurred], 2 * n))
    original_info, blurred_info = np.array(sizes[:n]), np.array(sizes[n:])
    probs = _probabilities(bundle, np.concatenate([originals, fully_blurred]))
    original_probs, blurred_probs = probs[:n], probs[n:]
    original_classes = original_probs.argmax(axis=1)
    targets = original_classes.copy() if target is None else resolve_targets(bundle, images, target).numpy()
    rows = np.arange(n)
    # Per metric: the prediction on the original and on the fully blurred image.
    ends = {
        "sic": (original_probs[rows, targets], blurred_probs[rows, targets]),
        "aic": (np.ones(n), (blurred_probs.argmax(axis=1) == original_classes).astype(np.float64)),
    }
    skipped = {
        metric: [
            Skipped(i, reason)
            for i in range(n)
            if (reason := _skip_reason(orig[i], blur[i], original_info[i], blurred_info[i], min_pred_value)) is not None
        ]
        for metric, (orig, blur) in ends.items()
    }
    return PicReference(originals, fully_blurred, original_info, blurred_info, targets, original_classes, ends, skipped)


def pic_metrics(
    bundle: ModelBundle,
    images: torch.Tensor,
    maps: Mapping[str, np.ndarray],
    seed_masks: np.ndarray,
    target: int | Sequence[int] | None = None,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    min_pred_value: float = 0.0,
    keep_monotonous: bool = True,
    num_data_points: int = DEFAULT_NUM_POINTS,
    progress: ProgressFn | None = None,
    reference: "PicReference | None" = None,
) -> PicResult:
    """SIC and AIC for a normalised batch `images` (N, C, H, W), per method its maps
    (N, H, W), and per image a seed mask (N, H, W) from `random_seed_masks`.

    The model sees each image as the uint8 picture `bundle.to_display` makes of it.
    `target` as in `explain.attribute` (None: top-1 of each original). `progress(done,
    total)` counts partially revealed images. `reference` (from `pic_reference` on the
    same images, masks, target and `min_pred_value`) saves recomputing what every
    method shares."""
    if images.dim() != 4:
        raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(images.shape)}")
    n, _, h, w = images.shape
    if seed_masks.shape != (n, h, w) or seed_masks.dtype != bool:
        raise ValueError(f"seed_masks must be boolean of shape {(n, h, w)}, got {seed_masks.dtype} {seed_masks.shape}")
    for key, m in maps.items():
        if tuple(np.shape(m)) != (n, h, w):
            raise ValueError(f"maps of {key!r} have shape {tuple(np.shape(m))}, expected {(n, h, w)}")
    thresholds = tuple(float(t) for t in thresholds)
    if any(not 0.0 <= t <= 1.0 for t in thresholds):
        raise ValueError("thresholds must lie in [0, 1]")

    if reference is None:
        reference = pic_reference(bundle, images, seed_masks, target, min_pred_value)
    originals, targets, original_classes = reference.originals, reference.targets, reference.original_classes
    original_info, blurred_info, ends, skipped = (
        reference.original_info,
        reference.blurred_info,
        reference.ends,
        reference.skipped,
    )
    needed = sorted(set(range(n)) - ({s.index for s in skipped["sic"]} & {s.index for s in skipped["aic"]}))

    # Partially revealed images, streamed through the model in batches.
    method_keys = list(maps)
    jobs = [(j, i, t) for j in range(len(method_keys)) for i in needed for t in range(len(thresholds))]
    information = np.zeros((len(method_keys), n, len(thresholds)))
    scores = np.zeros((len(method_keys), n, len(thresholds)))
    top1 = np.zeros((len(method_keys), n, len(thresholds)), dtype=np.int64)
    pending: list[tuple[tuple[int, int, int], np.ndarray]] = []

    def flush() -> None:
        p = _probabilities(bundle, np.stack([im for _, im in pending]))
        for (j, i, t), row in zip((job for job, _ in pending), p, strict=True):
            scores[j, i, t] = row[targets[i]]
            top1[j, i, t] = row.argmax()
        pending.clear()

    def reveal(job: tuple[int, int, int]) -> tuple[np.ndarray, int]:
        j, i, t = job
        revealed = blurred_image(
            originals[i], reveal_mask(np.asarray(maps[method_keys[j]][i]), seed_masks[i], thresholds[t])
        )
        return revealed, webp_size(revealed)

    # Revealed images are made on the CPU pool while this thread runs the model on the previous batch.
    batch_size = forward_batch_size(bundle, images.shape[1:])
    for done, ((j, i, t), (revealed, size)) in enumerate(
        zip(jobs, ordered_map(reveal, jobs, 2 * batch_size), strict=True), start=1
    ):
        information[j, i, t] = size
        pending.append(((j, i, t), revealed))
        if len(pending) >= batch_size:
            flush()
        if progress is not None:
            progress(done, len(jobs))
    if pending:
        flush()

    predictions = {"sic": scores, "aic": (top1 == original_classes[None, :, None]).astype(np.float64)}
    results: dict[str, dict[str, Curves]] = {"sic": {}, "aic": {}}
    grid = np.append(np.linspace(0.0, 1.0, num_data_points, endpoint=False), 1.0)
    for info in (SIC, AIC):
        orig, blur = ends[info.key]
        refused = {s.index for s in skipped[info.key]}
        kept = tuple(i for i in range(n) if i not in refused)
        for j, key in enumerate(method_keys):
            curves = []
            for i in kept:
                x_points = np.clip(
                    (information[j, i] - blurred_info[i]) / (original_info[i] - blurred_info[i]), 0.0, 1.0
                )
                y_points = np.clip((predictions[info.key][j, i] - blur[i]) / (orig[i] - blur[i]), 0.0, 1.0)
                curves.append(pic_curve(x_points, y_points, keep_monotonous, num_data_points)[1])
            results[info.key][key] = Curves(
                metric=info, method=key, x=grid, curves=np.array(curves).reshape(len(kept), grid.size), kept=kept,
                skipped=tuple(skipped[info.key]),
            )
    return PicResult(
        sic=results["sic"],
        aic=results["aic"],
        thresholds=thresholds,
        targets=targets,
        original_classes=original_classes,
    )


def pic_strip(
    bundle: ModelBundle,
    image: torch.Tensor,
    saliency: np.ndarray,
    seed_mask: np.ndarray,
    target: int,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> PicStrip:
    """The partially revealed images of one image (C, H, W) and map (H, W), fully blurred
    first and original last, with their normalised information and class score."""
    original = bundle.to_display(image[None])[0]
    thresholds = tuple(float(t) for t in thresholds)
    revealed = [blurred_image(original, seed_mask)]
    revealed += [blurred_image(original, reveal_mask(np.asarray(saliency), seed_mask, t)) for t in thresholds]
    revealed.append(original)
    stack = np.stack(revealed)
    sizes = np.array([webp_size(im) for im in stack], dtype=np.float64)
    span = sizes[-1] - sizes[0]
    information = (sizes - sizes[0]) / span if span > 0 else np.full(len(sizes), np.nan)
    scores = _probabilities(bundle, stack)[:, int(target)]
    return PicStrip(thresholds=(0.0, *thresholds, 1.0), images=stack, information=information, scores=scores)


_REFERENCES: OrderedDict[tuple, PicReference] = OrderedDict()
_REFERENCES_LOCK = threading.Lock()
KEPT_REFERENCES = 8


def _shared_reference(data: MetricInput, params: Mapping[str, Any], seed_masks: np.ndarray) -> PicReference:
    """`pic_reference` once per batch and settings, shared by every method's run (the
    fully blurred images and their information and predictions do not depend on the map)."""
    targets = tuple(int(t) for t in data.targets)
    key = (
        data.bundle.model_id,
        data.digests,
        targets,
        params["seed_fraction"],
        params["seed"],
        params["min_pred_value"],
    )
    with _REFERENCES_LOCK:
        found = _REFERENCES.get(key) if data.digests else None
    if found is not None:
        return found
    reference = pic_reference(data.bundle, data.images, seed_masks, list(targets), params["min_pred_value"])
    if data.digests:
        with _REFERENCES_LOCK:
            _REFERENCES[key] = reference
            while len(_REFERENCES) > KEPT_REFERENCES:
                _REFERENCES.popitem(last=False)
    return reference


def _seed_masks(data: MetricInput, params: Mapping[str, Any]) -> np.ndarray:
    n, _, height, width = data.images.shape
    return random_seed_masks(n, height, width, params["seed_fraction"], params["seed"])


def _compute(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    seed_masks = _seed_masks(data, params)
    result = pic_metrics(
        data.bundle, data.images, {data.method.ident: data.maps}, seed_masks, [int(t) for t in data.targets],
        min_pred_value=params["min_pred_value"], keep_monotonous=params["keep_monotonous"], progress=data.progress,
        reference=_shared_reference(data, params, seed_masks),
    )
    return {"sic": result.sic[data.method.ident], "aic": result.aic[data.method.ident]}


def _strip(data: MetricInput, params: Mapping[str, Any], index: int) -> Strip:
    target = int(data.targets[index])
    strip = pic_strip(data.bundle, data.images[index], data.maps[index], _seed_masks(data, params)[index], target)
    captions = tuple(f"{t:.1%} revealed · info {i:.2f} · p={s:.3f}"
                     for t, i, s in zip(strip.thresholds, strip.information, strip.scores, strict=True))
    return Strip(strip.images, captions, note=f"First: the fully blurred image (seed pixels only); last: the original. "
                                              f"p = probability of class {target}: {data.bundle.class_names[target]}.")


register_metric(
    Metric(
        key="sic_aic",
        label="SIC / AIC",
        scores=(SIC, AIC),
        compute=_compute,
        description="Start from a blurred image (interpolated from random seed pixels) and reveal the most salient "
                    "pixels in "
        "growing fractions. x = information of the revealed image (lossless WebP size), normalised between the "
        "fully blurred image and the original; y = softmax score of the explained class (SIC, median over images) "
        "or whether the top-1 class equals the original's (AIC, mean over images).",
        params=(
            Param(
                "seed_fraction",
                "Seed pixels (fraction)",
                DEFAULT_SEED_FRACTION,
                0.0,
                0.05,
                0.005,
                help="Random pixels kept in the fully blurred image, as the reference does",
            ),
            Param("seed", "Random seed", 0, 0, 2**31 - 1, 1),
            Param(
                "min_pred_value",
                "Minimum score on the original",
                0.0,
                0.0,
                1.0,
                0.05,
                help="Images whose original class score is lower are skipped (the reference uses 0.8 by default)",
            ),
            Param(
                "keep_monotonous",
                "Monotone curves",
                True,
                help="Keep the normalised score non-decreasing, as in the paper",
            ),
        ),
        passes=lambda params, n: n * (len(DEFAULT_THRESHOLDS) + 2),
        detail=_strip,
        suggested_methods=("xrai",),
    )
)
