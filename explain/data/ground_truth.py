"""Ground truth: where the evidence of each image really is, for the localisation metrics.

A labelled dataset may come with
- masks: a folder (or a zip) mirroring the images, one mask file per image with the
  same path and any image suffix (`masks/cat/001.png` for `cat/001.jpg`); non-zero
  pixels are the evidence;
- boxes: a CSV or JSON table of `image, x0, y0, x1, y1` in the image's pixels (several
  rows for one image: their union), `image` its path in the dataset or its file name.

Mask files go through the same listing, limits and decoder as images
(`datasets.folder_entries` / `zip_entries`, `images.load_image_bytes`), with one more
limit: a mask may not claim more pixels than its image, checked from the header before
anything is decoded (a mask bomb is refused for the price of its header). A mask of
another size than its image, with more than two grey levels (not binary), or missing
is a problem for that image alone, said in one line; the rest of the data runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
from PIL import Image

from .datasets import DatasetError, DatasetLimits, folder_entries, zip_entries
from .images import ImageLoadError, load_image_bytes, read_image_file

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels, x1 and y1 exclusive
TruthEntry = Union[bytes, np.ndarray, tuple[Box, ...]]  # a mask file's bytes, a decoded mask, or boxes
TABLE_SUFFIXES = (".csv", ".json")
MAX_TABLE_BYTES = 20 * 2**20


class GroundTruthError(ValueError):
    """One image's ground truth cannot be used; the message says why, in one line."""


def decode_mask(entry: TruthEntry, name: str, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) bool mask of an image of `size` (width, height) from its entry: a mask
    file's bytes (binary, the image's size), a decoded mask, or boxes."""
    width, height = size
    if isinstance(entry, tuple):
        return boxes_mask(entry, name, size)
    if isinstance(entry, np.ndarray):
        array = np.asarray(entry)
    else:
        try:
            picture = load_image_bytes(entry, f"{name} (mask)", max_pixels=width * height)  # a bigger header: refused
        except ImageLoadError as exc:
            raise GroundTruthError(str(exc)) from None
        array = np.asarray(picture.convert("L"))
    if array.shape != (height, width):
        raise GroundTruthError(f"{name}: the mask is {array.shape[1]} x {array.shape[0]} pixels, the image "
                               f"{width} x {height}; a mask must have its image's size.")
    levels = np.unique(array)
    if len(levels) > 2 or (len(levels) == 2 and levels[0] != 0):
        raise GroundTruthError(f"{name}: the mask has {len(levels)} grey levels; a mask must be binary "
                               "(0 = background, one other value = evidence).")
    mask = array != 0
    if not mask.any():
        raise GroundTruthError(f"{name}: the mask is empty (no evidence marked).")
    return mask


def boxes_mask(boxes: Sequence[Box], name: str, size: tuple[int, int]) -> np.ndarray:
    """The union of `boxes` as an (H, W) bool mask; boxes outside the image are refused."""
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise GroundTruthError(f"{name}: the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or outside the "
                                   f"{width} x {height} image.")
        mask[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
    return mask


def model_view(mask: np.ndarray, crop: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """A mask at the image's size -> the mask of what the model sees (`crop`: the model's
    resize and center crop, `ModelBundle.crop`), thresholded at half."""
    return np.asarray(crop(Image.fromarray(mask.astype(np.uint8) * 255, "L"))) >= 128


def _stem(path: str) -> str:
    return str(PurePosixPath(path).with_suffix("")).lower()


def match_entries(image_names: Sequence[str], entries: Mapping[str, TruthEntry]) -> dict[str, TruthEntry]:
    """Each image's entry: the entry with its path without suffix, else the one whose path
    ends like it or that it ends like (a wrapping folder on either side), else the one
    with its file name when only one has it."""
    by_stem = {_stem(k): v for k, v in entries.items()}
    by_file: dict[str, list[str]] = {}
    for stem in by_stem:
        by_file.setdefault(stem.rsplit("/", 1)[-1], []).append(stem)
    out = {}
    for name in image_names:
        stem = _stem(name)
        if stem in by_stem:
            out[name] = by_stem[stem]
            continue
        candidates = [s for s in by_file.get(stem.rsplit("/", 1)[-1], [])
                      if s.endswith("/" + stem) or stem.endswith("/" + s) or "/" not in s]
        if len(candidates) == 1:
            out[name] = by_stem[candidates[0]]
    return out


@dataclass(frozen=True)
class GroundTruthSource:
    """Where an image set's ground truth is: `entries` by their path in the source, what
    was skipped while listing it, and how to close it (a zip stays open)."""

    name: str
    entries: Mapping[str, Callable[[], TruthEntry]]
    skipped: tuple[str, ...] = ()
    close: Callable[[], None] = field(default=lambda: None)

    def for_images(self, image_names: Sequence[str]) -> tuple[dict[str, Callable[[], TruthEntry]], list[str]]:
        """Each image's entry reader, and the problems: images without ground truth."""
        found = match_entries(image_names, self.entries)  # type: ignore[arg-type]
        missing = [n for n in image_names if n not in found]
        problems = list(self.skipped)
        if missing:
            problems.append(f"{self.name}: no ground truth for {len(missing)} of {len(image_names)} image(s) "
                            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); they are skipped "
                            "by the localisation metrics.")
        return found, problems  # type: ignore[return-value]


def parse_boxes(data: bytes, name: str) -> tuple[dict[str, tuple[Box, ...]], list[str]]:
    """Boxes per image from a CSV (header `image,x0,y0,x1,y1`) or JSON (a list of objects
    with those keys, or {image: [[x0, y0, x1, y1], ...]}); rows that cannot be read are
    listed, not fatal."""
    if len(data) > MAX_TABLE_BYTES:
        raise DatasetError(f"{name}: the table is {len(data) / 2**20:.0f} MB; "
                           f"the limit is {MAX_TABLE_BYTES // 2**20} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{name}: not a UTF-8 text file.") from None
    rows: list[tuple[str, Any]] = []
    if name.lower().endswith(".json"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{name}: not valid JSON ({exc.msg}, line {exc.lineno}).") from None
        if isinstance(parsed, dict):
            for image, listed in parsed.items():
                several = isinstance(listed, list) and listed and isinstance(listed[0], list)
                for box in (listed if several else [listed]):
                    rows.append((str(image), box))
        elif isinstance(parsed, list):
            rows = [(str(r.get("image", "")), [r.get(k) for k in ("x0", "y0", "x1", "y1")]) if isinstance(r, dict)
                    else ("", r) for r in parsed]
        else:
            raise DatasetError(f"{name}: expected a list of boxes or an object of image: boxes.")
    else:
        reader = csv.DictReader(io.StringIO(text))
        wanted = {"image", "x0", "y0", "x1", "y1"}
        if not reader.fieldnames or not wanted <= {f.strip().lower() for f in reader.fieldnames}:
            raise DatasetError(f"{name}: the CSV needs the columns image, x0, y0, x1, y1 (found: "
                               f"{', '.join(reader.fieldnames or []) or 'none'}).")
        for record in reader:
            record = {k.strip().lower(): v for k, v in record.items() if k}
            rows.append((record["image"] or "", [record[k] for k in ("x0", "y0", "x1", "y1")]))
    boxes: dict[str, list[Box]] = {}
    problems = []
    for number, (image, values) in enumerate(rows, start=1):
        try:
            box = tuple(float(v) for v in values)
            if len(box) != 4 or not image or not all(np.isfinite(box)):
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{name}: box {number} ({image or 'no image'}) is not image, x0, y0, x1, y1; skipped.")
            continue
        boxes.setdefault(image.strip(), []).append(box)  # four floats, checked above
    return {k: tuple(v) for k, v in boxes.items()}, problems


def _constant(entry: TruthEntry) -> Callable[[], TruthEntry]:
    return lambda: entry


def boxes_source(data: bytes, name: str) -> GroundTruthSource:
    """A boxes table (CSV/JSON bytes) as a ground-truth source; unreadable rows listed."""
    boxes, problems = parse_boxes(data, name)
    return GroundTruthSource(name, {image: _constant(entry) for image, entry in boxes.items()}, tuple(problems))


def open_ground_truth(path: str | Path, roots: Sequence[Path] | None = None,
                      limits: DatasetLimits = DatasetLimits()) -> GroundTruthSource:
    """Masks (a folder or a .zip of mask images) or boxes (.csv / .json), listed (masks not
    read yet) within `roots` (None: wherever the path is, on your own machine)."""
    file = Path(path).expanduser().resolve()
    roots = list(roots) if roots is not None else [file if file.is_dir() else file.parent]
    if file.suffix.lower() in TABLE_SUFFIXES:
        if not any(file.is_relative_to(Path(r).resolve()) for r in roots):
            raise DatasetError(f"{path} is outside the folders this instance may read.")
        try:
            data = read_image_file(file, file.name, max_bytes=MAX_TABLE_BYTES)
        except ImageLoadError as exc:
            raise DatasetError(str(exc)) from None
        return boxes_source(data, file.name)
    if file.suffix.lower() == ".zip":
        if not any(file.is_relative_to(Path(r).resolve()) for r in roots):
            raise DatasetError(f"{path} is outside the folders this instance may read.")
        try:
            archive = zipfile.ZipFile(file)
        except (OSError, zipfile.BadZipFile):
            raise DatasetError(f"{file.name}: not a readable zip archive.") from None
        try:
            entries = zip_entries(archive, file.name, limits)
        except BaseException:
            archive.close()
            raise
        return GroundTruthSource(file.name, dict(entries), close=archive.close)
    folder, entries, skipped = folder_entries(file, roots, limits)
    return GroundTruthSource(folder.name, dict(entries), tuple(skipped))


def masks_for_images(source: GroundTruthSource, images: Sequence[tuple[str, tuple[int, int]]]) \
        -> tuple[dict[str, np.ndarray], list[str]]:
    """Each image's decoded mask (name -> (H, W) bool, at the image's size) and the
    problems (missing, unreadable, wrong size, not binary, empty), one line each."""
    readers, problems = source.for_images([name for name, _ in images])
    masks = {}
    for name, size in images:
        if name not in readers:
            continue
        try:
            masks[name] = decode_mask(readers[name](), name, size)
        except (GroundTruthError, ImageLoadError) as exc:
            problems.append(str(exc))
    return masks, problems


@dataclass(frozen=True, eq=False)
class ImageTruth:
    """A dataset's decoded ground truth: a bool mask per image name (at the image's own
    size), and the problems met (one line each), from the source `name`."""

    name: str
    masks: Mapping[str, np.ndarray]
    problems: tuple[str, ...] = ()

    def digest(self, image_name: str) -> str:
        """What names the image's mask in cache keys ("" when it has none)."""
        mask = self.masks.get(image_name)
        if mask is None:
            return ""
        h = hashlib.sha1(repr(mask.shape).encode())
        h.update(np.packbits(mask).tobytes())
        return h.hexdigest()[:16]


def ground_truth_from_upload(data: bytes, filename: str, images: Sequence[tuple[str, tuple[int, int]]],
                             limits: DatasetLimits = DatasetLimits()) -> ImageTruth:
    """The ground truth of `images` (name, (width, height)) from an uploaded zip of masks
    or a boxes CSV/JSON, with the same checks as from a path."""
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix in TABLE_SUFFIXES:
        source = boxes_source(data, filename)
    elif suffix == ".zip":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise DatasetError(f"{filename}: not a zip archive.") from None
        source = GroundTruthSource(filename, dict(zip_entries(archive, filename, limits)), close=archive.close)
    else:
        raise DatasetError(f"{filename}: ground truth is a .zip of masks or a .csv / .json of boxes.")
    try:
        masks, problems = masks_for_images(source, images)
    finally:
        source.close()
    return ImageTruth(filename, masks, tuple(problems))


__all__ = [
    "Box", "GroundTruthError", "GroundTruthSource", "ImageTruth", "TruthEntry", "boxes_mask", "boxes_source",
    "decode_mask", "ground_truth_from_upload", "masks_for_images", "match_entries", "model_view", "open_ground_truth",
    "parse_boxes",
]
