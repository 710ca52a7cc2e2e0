"""Image datasets from a user: single uploads, a zip of an image folder, or a folder on
the server that the operator allowed.

Folder layout: one sub-folder per class (`cat/001.png`, `dog/002.jpg`); the folder
name is the image's label. Images at the top level have no label. A single folder
wrapping everything (`pets/cat/001.png`) is looked through.

Zips are read in memory, never extracted: entries whose path climbs out of the
archive (`../x.png`, absolute paths) are refused, and so are archives that would
inflate past the limits (zip bombs). Every image goes through `load_image_bytes`,
which refuses image bombs and damaged files; those, entries whose compressed data is
corrupt and server files over the size limit (never read) are listed in `skipped`.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import posixpath
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

from .images import ImageLoadError, NamedImage, load_image_bytes, read_image_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_COMPRESSION_RATIO = 200  # images barely compress; a ratio far above this is a bomb


class DatasetError(ValueError):
    """A dataset cannot be used; the message says why, for the person who gave it."""


@dataclass(frozen=True)
class DatasetLimits:
    max_images: int = 2000
    max_total_bytes: int = 512 * 2**20
    max_total_pixels: int = 150_000_000  # decoded images held in memory (about 450 MB of RGB)


@dataclass(frozen=True)
class ImageDataset:
    """Images with optional labels. `labels[i]` is the class folder of `images[i]` (None
    when unlabelled); `classes` are the sorted folder names; `skipped` lists the files
    left out and why."""

    name: str
    images: tuple[NamedImage, ...]
    labels: tuple[str | None, ...]
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError("one label (or None) per image is needed")

    def __len__(self) -> int:
        return len(self.images)

    @cached_property
    def id(self) -> str:
        """Content digest (computed once): changes whenever images or labels change."""
        h = hashlib.sha1(self.name.encode())
        for image, label in zip(self.images, self.labels):
            h.update(f"{image.name}\0{label}\0{image.digest}".encode())
        return h.hexdigest()[:16]

    @property
    def classes(self) -> list[str]:
        return sorted({label for label in self.labels if label is not None})

    @property
    def is_labelled(self) -> bool:
        return bool(self.images) and all(label is not None for label in self.labels)

    @property
    def targets(self) -> list[int | None]:
        """Label of each image as an index into `classes` (what training, e.g. ROAR, needs)."""
        index = {c: i for i, c in enumerate(self.classes)}
        return [index[label] if label is not None else None for label in self.labels]

    def label_of(self, image_name: str) -> str | None:
        for image, label in zip(self.images, self.labels):
            if image.name == image_name:
                return label
        return None

    def model_targets(self, class_names: Sequence[str]) -> list[int | None]:
        """Label of each image as an index into a model's classes (see `label_indices`)."""
        return label_indices(self.labels, class_names)


def label_indices(labels: Sequence[str | None], class_names: Sequence[str]) -> list[int | None]:
    """Each label as an index into a model's classes: a folder named like a class
    (case-insensitive) or by its index (`0`, `17`) maps to it; else None."""
    lookup = {name.strip().lower(): i for i, name in enumerate(class_names)}
    out: list[int | None] = []
    for label in labels:
        if label is None:
            out.append(None)
        elif label.strip().lower() in lookup:
            out.append(lookup[label.strip().lower()])
        elif label.isdigit() and int(label) < len(class_names):
            out.append(int(label))
        else:
            out.append(None)
    return out


def _is_image_name(path: str) -> bool:
    parts = PurePosixPath(path).parts
    hidden = any(p.startswith(".") or p == "__MACOSX" for p in parts)
    return not hidden and path.lower().endswith(IMAGE_SUFFIXES)


def labels_for(paths: Sequence[str]) -> list[str | None]:
    """Class folder per relative path, looking through one folder that wraps everything."""
    parts = [PurePosixPath(p).parts for p in paths]
    if parts and all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    return [p[0] if len(p) >= 2 else None for p in parts]


def _decode_all(
    name: str,
    entries: Iterable[tuple[str, Callable[[], bytes]]],
    limits: DatasetLimits,
    progress: Callable[[int, int], None] | None,
) -> ImageDataset:
    entries = list(entries)
    if not entries:
        raise DatasetError(f"{name}: no images found (expected {', '.join(IMAGE_SUFFIXES)} files).")
    if len(entries) > limits.max_images:
        raise DatasetError(f"{name}: {len(entries)} images; this instance accepts at most {limits.max_images} per dataset.")
    images, kept_paths, skipped = [], [], []
    pixels = 0
    for i, (path, read) in enumerate(entries):
        try:
            image = load_image_bytes(read(), path)
        except ImageLoadError as exc:
            skipped.append(str(exc))
            continue
        pixels += image.width * image.height
        if pixels > limits.max_total_pixels:
            raise DatasetError(
                f"{name}: the images hold more than {limits.max_total_pixels / 1e6:.0f} megapixels in total; "
                f"use fewer or smaller images."
            )
        images.append(NamedImage(path, image))
        kept_paths.append(path)
        if progress is not None:
            progress(i + 1, len(entries))
    if not images:
        raise DatasetError(f"{name}: none of the {len(entries)} image files could be read. " + " ".join(skipped[:3]))
    return ImageDataset(name, tuple(images), tuple(labels_for(kept_paths)), tuple(skipped))


def safe_member_path(member: str) -> str:
    """The entry's path inside the archive, or DatasetError when it would escape the
    extraction folder (`..`, absolute paths, drive letters)."""
    normalised = member.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise DatasetError(f"The zip entry {member!r} has an absolute path; the archive is refused.")
    clean = posixpath.normpath(normalised)
    if clean == ".." or clean.startswith("../") or ".." in PurePosixPath(normalised).parts:
        raise DatasetError(f"The zip entry {member!r} points outside the archive (path traversal); the archive is refused.")
    return clean


def dataset_from_zip(
    data: bytes, name: str = "upload.zip", limits: DatasetLimits = DatasetLimits(),
    progress: Callable[[int, int], None] | None = None,
) -> ImageDataset:
    """A dataset from a zip of an image folder, read in memory with size limits."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise DatasetError(f"{name}: not a zip archive.") from None
    with archive:
        try:
            return _decode_all(name, zip_entries(archive, name, limits), limits, progress)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
            raise DatasetError(f"{name}: the archive is damaged or uses an unsupported compression ({exc}).") from None


Entry = tuple[str, Callable[[], bytes]]  # (path inside the dataset, read its bytes: ImageLoadError when unusable)


def zip_entries(archive: zipfile.ZipFile, name: str, limits: DatasetLimits) -> list[Entry]:
    """The image entries of an open zip, sorted by path, after the archive-wide checks
    (path traversal, encryption, declared and per-entry inflation); each reader reads
    at most what is left of `limits.max_total_bytes`, whatever the header claims."""
    members = [m for m in archive.infolist() if not m.is_dir()]
    for member in members:
        safe_member_path(member.filename)
    if any(m.flag_bits & 0x1 for m in members):
        raise DatasetError(f"{name}: the archive is encrypted; upload an unencrypted zip.")
    declared = sum(m.file_size for m in members)
    if declared > limits.max_total_bytes:
        raise DatasetError(
            f"{name}: the archive would inflate to {declared / 2**20:.0f} MB; the limit is {limits.max_total_bytes / 2**20:.0f} MB."
        )
    for member in members:
        if member.file_size > 2**20 and member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1):
            raise DatasetError(
                f"{name}: the entry {member.filename!r} inflates {member.file_size // max(member.compress_size, 1)}-fold "
                f"(a zip bomb?); the archive is refused."
            )
    images = [m for m in members if _is_image_name(safe_member_path(m.filename))]
    budget = [limits.max_total_bytes]

    def reader(member: zipfile.ZipInfo) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                with archive.open(member) as handle:
                    content = handle.read(budget[0] + 1)
            except (zlib.error, zipfile.BadZipFile, EOFError) as exc:  # this entry's data is corrupt: skip it
                raise ImageLoadError(f"{member.filename}: the compressed data is damaged ({exc}); skipped.") from None
            budget[0] -= len(content)
            if budget[0] < 0:
                raise DatasetError(f"{name}: the archive inflates past {limits.max_total_bytes / 2**20:.0f} MB; refused.")
            return content

        return read

    return sorted(((safe_member_path(m.filename), reader(m)) for m in images), key=lambda e: e[0])


def outside_message(text: str) -> str:
    """The one refusal for a path outside the operator's roots: the same words whether or
    not it exists, and no server path of the roots themselves."""
    return (f"{text} is outside the folders this instance may read (the operator's data_roots); relative paths "
            "start in the first of them.")


def inside_roots(path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path`, symlinks resolved, lies inside one of `roots` (nothing is read)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return False
    return any(resolved == root or resolved.is_relative_to(root) for root in (Path(r).resolve() for r in roots))


def allowed_glob(pattern: str, roots: Sequence[Path]) -> str:
    """`pattern` made absolute (relative ones start in the first root) once the folder it
    starts from (its components before the first wildcard) lies inside the roots: checked
    before anything is listed or read. DatasetError (the same words whether or not the
    path exists) otherwise."""
    if not roots:
        raise DatasetError("Server files are disabled on this instance: the operator has allowed no folder "
                           "(data_roots).")
    text = str(pattern).strip()
    if not text or "\0" in text:
        raise DatasetError("Enter a file pattern, e.g. ckpts/*.pt.")
    path = Path(text).expanduser()
    path = path if path.is_absolute() else Path(roots[0]) / path
    fixed = Path(path.anchor)
    for part in path.parts[1:]:
        if glob.has_magic(part):
            break
        fixed = fixed / part
    if ".." in path.parts or not inside_roots(fixed, roots):
        raise DatasetError(outside_message(text))
    return str(path)


def allowed_folder(path: str | os.PathLike, roots: Sequence[Path]) -> Path:
    """The resolved folder when it lies inside one of the operator's roots (symlinks
    resolved first), else DatasetError."""
    if not roots:
        raise DatasetError("Server folders are disabled on this instance: the operator has allowed none (data_roots).")
    text = str(path).strip()
    if not text:
        raise DatasetError("Enter a folder path.")
    if "\0" in text:
        raise DatasetError("The folder path contains a NUL character; no folder is named like that.")
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        folder = roots[0] / folder
    folder = folder.resolve()
    if not any(folder == root or folder.is_relative_to(root) for root in (Path(r).resolve() for r in roots)):
        raise DatasetError(outside_message(text))
    if not folder.is_dir():
        raise DatasetError(f"{text} is not a folder on the server.")
    return folder


def dataset_from_folder(
    path: str | os.PathLike, roots: Sequence[Path], limits: DatasetLimits = DatasetLimits(),
    progress: Callable[[int, int], None] | None = None,
) -> ImageDataset:
    """A dataset from a server folder inside the operator's roots, walked in sorted
    order. Symlinked folders are not entered; symlinked files that leave the roots are
    skipped."""
    folder, entries, skipped = folder_entries(path, roots, limits)
    dataset = _decode_all(folder.name or str(folder), entries, limits, progress)
    return ImageDataset(dataset.name, dataset.images, dataset.labels, tuple(skipped) + dataset.skipped)


def folder_entries(path: str | os.PathLike, roots: Sequence[Path], limits: DatasetLimits) -> tuple[Path, list[Entry], list[str]]:
    """(the resolved folder, its image entries in sorted order, the files skipped and
    why) for a folder inside `roots`; nothing is read yet (each reader checks the file's
    size before reading it)."""
    folder = allowed_folder(path, roots)
    resolved_roots = [Path(r).resolve() for r in roots]
    entries: list[Entry] = []
    skipped: list[str] = []
    for directory, subdirectories, filenames in os.walk(folder):  # symlinked folders are not entered
        subdirectories.sort()
        for filename in sorted(filenames):
            file = Path(directory) / filename
            relative = file.relative_to(folder).as_posix()
            if not _is_image_name(relative) or not file.is_file():
                continue
            real = file.resolve()
            if not any(real.is_relative_to(root) for root in resolved_roots):
                skipped.append(f"{relative}: links outside the allowed folders; skipped.")
                continue
            if len(entries) >= limits.max_images:  # stop walking early on huge trees
                raise DatasetError(f"{folder}: more than {limits.max_images} images; choose a smaller folder.")
            entries.append((relative, partial(read_image_file, real, relative)))
    return folder, entries, skipped


def dataset_from_uploads(
    files: Sequence[tuple[str, bytes]], name: str = "uploaded images", limits: DatasetLimits = DatasetLimits()
) -> ImageDataset:
    """Unlabelled images from single uploads; unreadable files are listed in `skipped`."""
    total = sum(len(data) for _, data in files)
    if total > limits.max_total_bytes:
        raise DatasetError(f"The uploads add up to {total / 2**20:.0f} MB; the limit is {limits.max_total_bytes / 2**20:.0f} MB.")
    dataset = _decode_all(name, [(n, partial(bytes, d)) for n, d in files], limits, None)
    return ImageDataset(dataset.name, dataset.images, tuple(None for _ in dataset.images), dataset.skipped)
