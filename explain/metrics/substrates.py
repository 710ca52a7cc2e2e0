"""What removed pixels become in the pixel-perturbation metrics (deletion, insertion's
start, IROF): the substrate, one image per image of a normalised batch.

- zero: 0 after normalisation, i.e. the normalisation's mean colour (the default so far);
- black: pixel value 0 before normalisation; grey: 0.5 before normalisation;
- mean: each image's per-channel mean;
- blur: RISE's Gaussian blur (11 px kernel, sigma 5, reflected borders);
- noise: uniform noise in [0, 1] before normalisation, the same seeded noise image for
  every image (so an image's curve does not depend on its batch mates).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.transforms.v2 import functional as TF

SUBSTRATES = ("zero", "black", "grey", "mean", "blur", "noise")
CONSTANT_SUBSTRATES = ("zero", "black", "grey")  # one image whatever the photo
SUBSTRATE_HELP = ("zero: 0 after normalisation (the normalisation mean colour); black / grey: pixel value 0 / 0.5 "
                  "before normalisation; mean: the image's mean colour; blur: Gaussian blur (sigma 5); noise: "
                  "uniform noise (seeded)")
BLUR_KERNEL = 11  # RISE's Gaussian: 11x11 kernel, sigma 5
BLUR_SIGMA = 5.0
NOISE_SEED = 0


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
    are the model's normalisation (black, grey and noise are pixel values before it)."""
    if substrate == "zero":
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
