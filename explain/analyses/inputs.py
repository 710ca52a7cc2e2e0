"""What an analysis of images explains: the model, the images (by content digest) and
the class of each image, resolved once.

`prepare_images` turns chosen images into what every analysis needs (the batch, the
crops the model sees, the top-5 predictions); predictions are remembered per model and
image content (`explain.methods.cache.predictions`), so a page's first paint after a
revisit runs no model at all. A page goes in two steps (`crop_images`, then
`CroppedImages.predicted(wait=False)`) so its photos paint before any model pass and
never wait behind a job holding the model.
`ClassChoice` says how the explained class is chosen (each image's top-1, one class
for all, or each image's label) and `Subject` records the resolved classes: every
method and metric then receives them explicitly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from ..data.ground_truth import ImageTruth, model_view
from ..data.images import NamedImage
from ..methods.cache import Prediction, predictions
from ..models.bundle import ModelBundle

CLASS_MODES = ("top1", "class", "label")



@dataclass(frozen=True)
class ImageRef:
    """An image as settings name it: its display name and its content digest."""

    name: str
    digest: str


@dataclass(frozen=True)
class ClassChoice:
    """How the explained class is chosen: "top1" (each image's top-1 prediction),
    "class" (class `index` for every image) or "label" (each image's labelled class)."""

    mode: str = "top1"
    index: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in CLASS_MODES:
            raise ValueError(f"class choice must be one of {CLASS_MODES}, not {self.mode!r}")
        if (self.mode == "class") != (self.index is not None):
            raise ValueError("a class index goes with mode 'class' only")

    def describe(self, class_names: Sequence[str] | Mapping[int, str]) -> str:
        """In words, for captions; `class_names[i]` names class i."""
        if self.mode == "top1":
            return "each image's top-1 prediction"
        if self.mode == "label" or self.index is None:
            return "each image's labelled class"
        return f"class {self.index}: {class_names[self.index]}"


@dataclass(frozen=True)
class Subject:
    """Which model, which images and which class of each image an analysis explains."""

    model_id: str
    model_name: str
    images: tuple[ImageRef, ...]
    targets: tuple[int, ...]
    class_choice: ClassChoice = ClassChoice()
    truth: tuple[str, ...] = ()  # per image its ground-truth mask's digest ("" none); () when the data has none

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(ref.name for ref in self.images)

    @property
    def digests(self) -> tuple[str, ...]:
        return tuple(ref.digest for ref in self.images)


@dataclass(frozen=True, eq=False)
class PreparedImages:
    """Chosen images as the model sees them: batch (N, C, H, W) on the CPU, uint8 crops
    (N, H, W, 3) and the top-5 (class, name, probability) of each; with ground truth,
    `masks` (N, H, W) bool in the model's view (all False: none) and their digests."""

    bundle: ModelBundle
    refs: tuple[ImageRef, ...]
    batch: torch.Tensor
    display: np.ndarray
    top5: tuple[Prediction, ...]
    masks: np.ndarray | None = None
    truth: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [ref.name for ref in self.refs]

    @property
    def digests(self) -> list[str]:
        return [ref.digest for ref in self.refs]

    def __len__(self) -> int:
        return len(self.refs)

    def targets(self, choice: ClassChoice, labels: Sequence[int | None] | None = None) -> tuple[int, ...]:
        """The explained class of each image under `choice` (labels: each image's class
        index in the model's classes, for mode "label")."""
        if choice.mode == "top1":
            return tuple(row[0][0] for row in self.top5)
        if choice.mode == "class" and choice.index is not None:
            if not 0 <= choice.index < self.bundle.num_classes:
                raise ValueError(f"class {choice.index} is out of range for {self.bundle.num_classes} classes")
            return (int(choice.index),) * len(self)
        known = [label for label in labels or () if label is not None]
        if labels is None or len(known) != len(self):
            raise ValueError("explaining the labelled class needs a label that names a model class for every image")
        return tuple(int(label) for label in known)

    def subject(self, choice: ClassChoice = ClassChoice(), labels: Sequence[int | None] | None = None) -> Subject:
        targets = self.targets(choice, labels)
        return Subject(self.bundle.model_id, self.bundle.name, self.refs, targets, choice, self.truth)

    def select(self, digests: Sequence[str]) -> "PreparedImages":
        """The images of this batch with these digests, in that order."""
        index = {ref.digest: i for i, ref in enumerate(self.refs)}
        rows = [index[d] for d in digests]
        return PreparedImages(self.bundle, tuple(self.refs[i] for i in rows), self.batch[rows], self.display[rows],
                              tuple(self.top5[i] for i in rows), None if self.masks is None else self.masks[rows],
                              tuple(self.truth[i] for i in rows) if self.truth else ())


@dataclass(frozen=True, eq=False)
class CroppedImages:
    """Chosen images preprocessed for a model, before any model pass: what a page paints
    first (`display`), and `predicted` turns them into `PreparedImages`."""

    bundle: ModelBundle
    refs: tuple[ImageRef, ...]
    batch: torch.Tensor
    display: np.ndarray

    @property
    def names(self) -> list[str]:
        return [ref.name for ref in self.refs]

    def predicted(self, wait: bool = True) -> PreparedImages | None:
        """With their top-5 (remembered; see above). `wait=False`: None instead of waiting
        when the top-5 needs the model and a job holds it (then predicted in the background)."""
        digests = [r.digest for r in self.refs]
        if wait:
            top5 = predictions.top_k(self.bundle, self.batch, digests)
        else:
            found = predictions.top_k_unless_busy(self.bundle, self.batch, digests)
            if found is None:
                return None
            top5 = found
        return PreparedImages(self.bundle, self.refs, self.batch, self.display, tuple(top5))


def crop_images(bundle: ModelBundle, images: Sequence[NamedImage]) -> CroppedImages:
    """Preprocess `images` for `bundle` (no model pass). Two images with the same content
    are kept once (the first name wins)."""
    unique: dict[str, NamedImage] = {}
    for image in images:
        unique.setdefault(image.digest, image)
    chosen = list(unique.values())
    if not chosen:
        raise ValueError("choose at least one image")
    batch = bundle.preprocess_batch([im.image for im in chosen])
    return CroppedImages(bundle, tuple(ImageRef(im.name, im.digest) for im in chosen), batch, bundle.to_display(batch))


def prepare_images(bundle: ModelBundle, images: Sequence[NamedImage]) -> PreparedImages:
    """Preprocess `images` for `bundle` and predict their top-5 (see `crop_images`)."""
    prepared = crop_images(bundle, images).predicted()
    assert prepared is not None  # waiting for the model always gives the top-5
    return prepared


def with_truth(prepared: PreparedImages, images: Sequence[NamedImage], truth: ImageTruth | None) -> PreparedImages:
    """The prepared images with their ground-truth masks in the model's view (all False
    for an image without one) and the masks' digests, when there is ground truth."""
    if truth is None:
        return prepared
    by_digest = {im.digest: im.name for im in images}
    names = [by_digest[d] for d in prepared.digests]
    size = int(prepared.batch.shape[-1])
    masks = np.zeros((len(names), size, size), dtype=bool)
    for i, name in enumerate(names):
        if name in truth.masks:
            masks[i] = model_view(truth.masks[name], prepared.bundle.crop)
    return dataclasses.replace(prepared, masks=masks, truth=tuple(truth.digest(n) for n in names))


@dataclass(frozen=True, eq=False)
class ImagesView:
    """What a stored result shows of its images without the model: names, the crops the
    model saw, their top-5, and the explained class of each with its name."""

    names: tuple[str, ...]
    display: np.ndarray
    top5: tuple[Prediction, ...]
    targets: tuple[int, ...]
    target_names: tuple[str, ...]

    @classmethod
    def of(cls, prepared: PreparedImages, subject: Subject) -> "ImagesView":
        names = prepared.bundle.class_names
        return cls(tuple(subject.names), prepared.display, prepared.top5, subject.targets,
                   tuple(names[t] for t in subject.targets))

    def to_parts(self) -> tuple[dict, dict]:
        """(arrays, json) to store."""
        return {"display": self.display}, {
            "names": list(self.names), "top5": [[list(p) for p in row] for row in self.top5],
            "targets": list(self.targets), "target_names": list(self.target_names),
        }

    @classmethod
    def from_parts(cls, arrays: dict | None, record: dict | None) -> "ImagesView | None":
        if arrays is None or record is None:
            return None
        top5 = tuple(tuple((int(c), str(n), float(p)) for c, n, p in row) for row in record["top5"])
        return cls(
            tuple(record["names"]), arrays["display"], top5, tuple(record["targets"]), tuple(record["target_names"])
        )

    def explained(self, row: int) -> str:
        return f"class {self.targets[row]}: {self.target_names[row]}"


IMAGES_PART = "images"


def store_images(parts, view: ImagesView) -> None:
    arrays, record = view.to_parts()
    parts.put_arrays(IMAGES_PART, arrays)
    parts.put_json(IMAGES_PART, record)


def load_images(parts) -> ImagesView | None:
    return ImagesView.from_parts(parts.get_arrays(IMAGES_PART), parts.get_json(IMAGES_PART))
