"""What removed pixels become in the pixel-perturbation metrics (deletion, insertion's
start, IROF): the substrate, one image per image of a normalised batch.

- zero: 0 after normalisation, i.e. the normalisation's mean colour (the default so far);
- black: pixel value 0 before normalisation; grey: 0.5 before normalisation;
- mean: each image's per-channel mean;
- blur: RISE's Gaussian blur (11 px kernel, sigma 5, reflected borders);
- noise: uniform noise in [0, 1] before normalisation, the same seeded noise image for
  every image (so an image's curve does not depend on its batch mates);
- linear: ROAD's noisy linear imputation (Rong et al. 2022): each removed pixel becomes
  the weighted mean of its 8 neighbours (1/6 side, 1/12 diagonal), known or imputed,
  plus Gaussian noise. Unlike the others it depends on which pixels are removed, so it
  is no fixed image: `remove_pixels` builds the perturbed images for any substrate.

Why in-house for the imputation: Quantus's `noisy_linear_imputation` solves one image at
a time and fills its sparse matrix entry by entry (`lil_matrix`); here the equations of
every image of a chunk are built at once (NumPy) and solved as one block-diagonal
system (`scipy.sparse.linalg.splu`), with the same equations, variable order and
noise draws, so the two give the same images (`tests/test_catalogue_faithfulness_road.py`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sparse
import torch
from scipy.sparse.linalg import splu
from torchvision.transforms.v2 import functional as TF

SUBSTRATES = ("zero", "black", "grey", "mean", "blur", "noise")
CONSTANT_SUBSTRATES = ("zero", "black", "grey")  # one image whatever the photo
SUBSTRATE_HELP = ("zero: 0 after normalisation (the normalisation mean colour); black / grey: pixel value 0 / 0.5 "
                  "before normalisation; mean: the image's mean colour; blur: Gaussian blur (sigma 5); noise: "
                  "uniform noise (seeded)")
BLUR_KERNEL = 11  # RISE's Gaussian: 11x11 kernel, sigma 5
BLUR_SIGMA = 5.0
NOISE_SEED = 0
LINEAR = "linear"  # noisy linear imputation (ROAD)
ROAD_SUBSTRATES = (LINEAR, *SUBSTRATES)  # ROAD's choices, its default first
ALL_SUBSTRATES = (*SUBSTRATES, LINEAR)  # deletion's and IROF's choices
LINEAR_HELP = "linear: noisy linear imputation from the neighbours (ROAD's)"
ROAD_SUBSTRATE_HELP = f"{LINEAR_HELP}; {SUBSTRATE_HELP}"
ALL_SUBSTRATE_HELP = f"{SUBSTRATE_HELP}; {LINEAR_HELP}"
LINEAR_NOISE = 0.01  # std of the imputation noise where a metric has no parameter for it (ROAD's default)
# Neighbour offsets (row, column) and weights of the imputation (ROAD's reference code and Quantus's).
NEIGHBOUR_WEIGHTS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6),
                     ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))
MAX_UNKNOWNS_PER_SOLVE = 2**14  # unknowns of one block-diagonal solve (bounds its memory)


def blur(images: torch.Tensor) -> torch.Tensor:
    """RISE's blurred image: Gaussian, 11 px kernel, sigma 5, reflected borders."""
    return TF.gaussian_blur(images, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])


def normalised(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Pixel values in [0, 1] (N, C, H, W) -> the model's normalised input."""
    shape = (1, -1, 1, 1)
    return (pixels - torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(shape)) / \
        torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(shape)


def make_substrate(images: torch.Tensor, substrate: str, mean: Sequence[float] = (0.0,),
                   std: Sequence[float] = (1.0,)) -> torch.Tensor:
    """The substrate of each image of a normalised batch (N, C, H, W); `mean` and `std`
    are the model's normalisation (black, grey and noise are pixel values before it).
    For "linear", the image with every pixel removed: nothing is left to interpolate
    from, so 0 (as `linear_imputation`); `remove_pixels` imputes partial removals."""
    if substrate in ("zero", LINEAR):
        return torch.zeros_like(images)
    if substrate in ("black", "grey"):
        level = 0.0 if substrate == "black" else 0.5
        return normalised(torch.full_like(images, level), mean, std)
    if substrate == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).contiguous()
    if substrate == "blur":
        return blur(images)
    if substrate == "noise":
        generator = torch.Generator().manual_seed(NOISE_SEED)
        noise = torch.rand(images.shape[1:], generator=generator, dtype=torch.float32).to(images.device, images.dtype)
        return normalised(noise.expand_as(images), mean, std).contiguous()
    raise ValueError(f"unknown substrate {substrate!r}; choose one of {SUBSTRATES}")


def removed_in_order(removed: np.ndarray, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image, pixel) of every removed pixel of `removed` (N, H, W): image by image, each
    image's pixels sorted by `order` (N, H*W; raster order when None)."""
    n = removed.shape[0]
    flat = removed.reshape(n, -1)
    keys = np.where(flat, order if order is not None else np.arange(flat.shape[1]), np.iinfo(np.int64).max)
    counts = flat.sum(axis=1)
    pixels = np.argsort(keys, axis=1, kind="stable")  # each image's removed pixels first, in `order`
    return np.repeat(np.arange(n), counts), pixels[np.arange(flat.shape[1])[None, :] < counts[:, None]]


def linear_imputation(images: np.ndarray, image_of: np.ndarray, pixel_of: np.ndarray) -> np.ndarray:
    """Values (K, C) of the removed pixels (`image_of`, `pixel_of`: image by image, as
    `removed_in_order` gives them) of a batch (N, C, H, W) under ROAD's linear imputation:
    each equals the weighted mean of its in-image neighbours, known values or unknowns
    solved together. An image with every pixel removed has nothing to interpolate from:
    its values are 0."""
    n, c, h, w = images.shape
    counts = np.bincount(image_of, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    variable = np.full((n, h * w), -1, dtype=np.int64)
    variable[image_of, pixel_of] = np.arange(len(pixel_of))
    values = np.zeros((len(pixel_of), c))
    solvable = np.flatnonzero((counts > 0) & (counts < h * w))
    group: list[int] = []
    for index in [*solvable, -1]:  # whole images per solve, up to MAX_UNKNOWNS_PER_SOLVE unknowns
        if group and (index < 0 or offsets[index + 1] - offsets[group[0]] > MAX_UNKNOWNS_PER_SOLVE):
            lo, hi = offsets[group[0]], offsets[group[-1] + 1]
            values[lo:hi] = _solve(images, variable, image_of[lo:hi], pixel_of[lo:hi], int(lo))
            group = []
        if index >= 0:
            group.append(int(index))
    return values


def _solve(images: np.ndarray, variable: np.ndarray, image_of: np.ndarray, pixel_of: np.ndarray,
           first: int) -> np.ndarray:
    """The imputation's equations for unknowns `first` .. `first + len(pixel_of)` (whole
    images, each with a known pixel): s_i u_i - sum_j w_ij u_j = sum_k w_ik x_k over the
    in-image neighbours (j unknown, k known), s_i their total weight. Unknowns of
    different images never meet, so the system is block-diagonal."""
    n, c, h, w = images.shape
    k = len(pixel_of)
    rows, cols = pixel_of // w, pixel_of % w
    diagonal = np.zeros(k)
    right = np.zeros((k, c))
    flat = images.reshape(n, c, h * w)
    a_rows, a_cols, a_values = [np.arange(k)], [np.arange(k)], [diagonal]
    for (dy, dx), weight in NEIGHBOUR_WEIGHTS:
        y, x = rows + dy, cols + dx
        inside = np.flatnonzero((y >= 0) & (y < h) & (x >= 0) & (x < w))
        diagonal[inside] += weight
        neighbour = (y * w + x)[inside]
        other = variable[image_of[inside], neighbour]
        unknown = other >= 0
        a_rows.append(inside[unknown])
        a_cols.append(other[unknown] - first)
        a_values.append(np.full(int(unknown.sum()), -weight))
        known = inside[~unknown]
        right[known] += weight * flat[image_of[known], :, neighbour[~unknown]]
    matrix = sparse.csc_matrix((np.concatenate(a_values), (np.concatenate(a_rows), np.concatenate(a_cols))),
                               shape=(k, k))
    # Symmetric, diagonally dominant with a known neighbour per image: no pivoting needed, and
    # SuperLU's symmetric mode with a minimum-degree ordering of A + A^T is 1.3-1.5x faster
    # than its default (COLAMD, partial pivoting), the same solution to rounding.
    factors = splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    return np.asarray(factors.solve(right)).reshape(k, c)


def remove_pixels(images: torch.Tensor, removed: torch.Tensor, substrate: str, mean: Sequence[float] = (0.0,),
                  std: Sequence[float] = (1.0,), *, noise: float = 0.0, rng: np.random.RandomState | None = None,
                  order: torch.Tensor | None = None) -> torch.Tensor:
    """A normalised batch (N, C, H, W) with the pixels `removed` (N, H, W) replaced by
    `substrate`. For "linear", Gaussian noise of std `noise` (input units) is added to
    the imputed values, drawn from `rng` image by image as (C, removed pixels), the
    pixels in their `order` (N, H*W): Quantus's draws, so a seeded NumPy stream gives
    Quantus's images."""
    if substrate != LINEAR:
        return torch.where(removed[:, None], make_substrate(images, substrate, mean, std), images)
    n, c, h, w = images.shape
    pixels = images.detach().cpu().double().numpy()
    image_of, pixel_of = removed_in_order(removed.reshape(n, h * w).cpu().numpy(),
                                          None if order is None else order.cpu().numpy())
    values = linear_imputation(pixels, image_of, pixel_of)
    if rng is not None:
        start = 0
        for count in np.bincount(image_of, minlength=n):
            values[start:start + count] += noise * rng.randn(c, count).T
            start += count
    out = pixels.reshape(n, c, h * w).copy()
    out[image_of, :, pixel_of] = values
    return torch.from_numpy(out.reshape(n, c, h, w)).to(images.device, images.dtype)
