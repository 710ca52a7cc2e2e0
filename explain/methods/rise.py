"""RISE: randomized input sampling (Petsiuk et al. 2018), in-house.

Neither Captum nor the other installed libraries implement RISE, and it is short: N
binary grids of s x s cells, each cell on with probability p, upsampled bilinearly to
(s + 1) x cell size and cropped to the input at a random shift (so cell borders fall
anywhere); the map is sum_i f_c(x * M_i) M_i / (N p), f_c the softmax probability of
the class. Masked pixels become 0 after normalisation (the mean image), as in the
paper's code. Masks come from a local seeded generator, are drawn once for all
images (so an image's map does not depend on its batch) and are built and evaluated
`bundle.batch_size` at a time on the device.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from ..models.bundle import ModelBundle
from .registry import Method, Param, register


class RiseMasks:
    """N seeded RISE masks of size (H, W), built chunk by chunk: the random draws (cells
    and shifts) are made once up front, so chunking never changes a mask."""

    def __init__(self, n: int, size: tuple[int, int], grid: int, p: float, seed: int) -> None:
        generator = torch.Generator().manual_seed(int(seed))
        self.size = size
        self.cell = (math.ceil(size[0] / grid), math.ceil(size[1] / grid))
        self.cells = (torch.rand(n, 1, grid, grid, generator=generator) < p).float()
        self.shifts = torch.stack([
            torch.randint(0, self.cell[0], (n,), generator=generator),
            torch.randint(0, self.cell[1], (n,), generator=generator),
        ], dim=1)

    def __len__(self) -> int:
        return self.cells.shape[0]

    def chunk(self, start: int, stop: int, device: torch.device) -> torch.Tensor:
        """Masks start..stop-1 as (k, 1, H, W) on `device`."""
        grid = self.cells.shape[-1]
        upsampled = F.interpolate(
            self.cells[start:stop].to(device), size=((grid + 1) * self.cell[0], (grid + 1) * self.cell[1]),
            mode="bilinear", align_corners=False,
        )
        height, width = self.size
        return torch.stack([
            upsampled[i, :, dy : dy + height, dx : dx + width]
            for i, (dy, dx) in enumerate(self.shifts[start:stop].tolist())
        ])


def _rise(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    masks = RiseMasks(
        int(p["n_masks"]), (int(x.shape[-2]), int(x.shape[-1])), int(p["grid"]), float(p["p"]), int(p["seed"])
    )
    saliency = torch.zeros(x.shape[0], *x.shape[-2:], device=x.device)
    with torch.no_grad():
        for start in range(0, len(masks), bundle.batch_size):
            chunk = masks.chunk(start, min(start + bundle.batch_size, len(masks)), x.device)  # (k, 1, H, W)
            for i in range(x.shape[0]):
                scores = bundle.model(x[i : i + 1].detach() * chunk).float().softmax(dim=1)[:, target[i]]
                saliency[i] += torch.einsum("k,khw->hw", scores, chunk[:, 0])
    return saliency / (len(masks) * float(p["p"]))


register(
    Method(
        key="rise",
        label="RISE",
        compute=_rise,
        description=(
            "Class probability of the image under random smooth masks, averaged with the masks as weights: "
            "sum_i f_c(x * M_i) M_i / (N p). The default of 500 masks keeps it to about 500 forward passes per image "
            "on a CPU; "
            "the paper used 4,000 to 8,000 (less noise)."
        ),
        reference="Petsiuk et al. 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models",
        params=(
            Param(
                "n_masks", "Masks", 500, 1, 8000, 50, help="Forward passes per image; more masks give a less noisy map."
            ),
            Param("grid", "Grid cells per side (s)", 7, 2, 32, 1, help="Masks are s x s random grids, upsampled."),
            Param("p", "Probability a cell is kept", 0.5, 0.05, 1.0, 0.05),
            Param("seed", "Random seed", 0, 0, 2**31 - 1, 1),
        ),
        signed=False,
        family="perturbation",
        evals_per_image=lambda p, size: int(p["n_masks"]),
        batched_internally=True,
    )
)
