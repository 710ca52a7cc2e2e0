"""SHAP summaries over a set of images, with the cells of a fixed grid as features.

Pixels are not comparable across images, grid cells are: the image is cut into a
`rows x cols` grid (the same cell is the same feature in every image) and each cell's
value is the **sum** of the pixel attributions inside it, so cell values keep SHAP's
additivity (they still add up to f(x) - f(background)). The colour of a dot is the
cell's mean intensity (mean over its pixels and channels, 0..1). Features are
ordered by mean |cell value| over the images, largest first.

Plain functions returning plain data for the SHAP figures (`plots.shap`), which is why it lives
beside them: the page, the analysis and the report builder all use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np



def grid_edges(size: int, cells: int) -> np.ndarray:
    """Boundaries of `cells` near-equal intervals covering 0..size (cells + 1 integers)."""
    if not 1 <= cells <= size:
        raise ValueError(f"a grid of {cells} cells does not fit {size} pixels")
    return np.round(np.linspace(0, size, cells + 1)).astype(int)


def cell_reduce(values: np.ndarray, grid: tuple[int, int], how: str) -> np.ndarray:
    """(N, H, W) -> (N, rows * cols) by "sum" or "mean" over each cell, row-major."""
    if values.ndim != 3:
        raise ValueError(f"expected (N, H, W), got shape {values.shape}")
    rows, cols = grid
    r_edges, c_edges = grid_edges(values.shape[1], rows), grid_edges(values.shape[2], cols)
    if how not in ("sum", "mean"):
        raise ValueError(f"cells are reduced by 'sum' or 'mean', not {how!r}")
    out = np.empty((values.shape[0], rows * cols), dtype=np.float64)
    for r in range(rows):
        for c in range(cols):
            block = values[:, r_edges[r] : r_edges[r + 1], c_edges[c] : c_edges[c + 1]]
            out[:, r * cols + c] = block.sum(axis=(1, 2)) if how == "sum" else block.mean(axis=(1, 2))
    return out


def cell_values(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Attribution of each grid cell: the sum of its pixels' attributions, (N, cells)."""
    return cell_reduce(np.asarray(maps, dtype=np.float64), grid, "sum")


def cell_intensity(images: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean intensity of each cell in 0..1 (over pixels and channels) of uint8 RGB
    images (N, H, W, 3), (N, cells)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected (N, H, W, C) images, got shape {images.shape}")
    return cell_reduce(images.astype(np.float64).mean(axis=3) / 255.0, grid, "mean")


def cell_label(index: int, grid: tuple[int, int]) -> str:
    """Human name of a cell, 1-based: 'r2c3' is row 2, column 3 from the top left."""
    return f"r{index // grid[1] + 1}c{index % grid[1] + 1}"


@dataclass(frozen=True)
class GridSummary:
    """SHAP values of grid cells across images.

    `values[i, j]`: attribution of cell j in image i for class `targets[i]`;
    `intensity[i, j]`: that cell's mean intensity; `mean_abs[j]`: mean over images of
    |values[:, j]|; `order`: cells by decreasing mean |value| (ties by cell index).
    """

    grid: tuple[int, int]
    image_names: list[str]
    targets: list[int]
    target_names: list[str]
    method: str
    values: np.ndarray
    intensity: np.ndarray
    mean_abs: np.ndarray
    order: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [cell_label(j, self.grid) for j in range(self.grid[0] * self.grid[1])]

    def mean_abs_grid(self) -> np.ndarray:
        """Mean |cell value| laid out as the grid (rows, cols)."""
        return self.mean_abs.reshape(self.grid)

    def ranked(self, top: int | None = None) -> list[tuple[str, float]]:
        """(cell label, mean |value|) from the most to the least important cell."""
        order = self.order[:top] if top else self.order
        return [(cell_label(int(j), self.grid), float(self.mean_abs[j])) for j in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain data (for reports)."""
        return {
            "grid": list(self.grid), "image_names": list(self.image_names), "targets": list(self.targets),
            "target_names": list(self.target_names), "method": self.method, "labels": self.labels,
            "values": self.values.tolist(), "intensity": self.intensity.tolist(),
            "mean_abs": self.mean_abs.tolist(), "order": self.order.tolist(),
        }


def summarize_grid(
    maps: np.ndarray,
    images: np.ndarray,
    grid: tuple[int, int],
    *,
    image_names: Sequence[str],
    targets: Sequence[int],
    target_names: Sequence[str] = (),
    method: str = "",
) -> GridSummary:
    """Grid-cell summary of attribution maps (N, H, W) of the display images (N, H, W, 3)."""
    maps = np.asarray(maps)
    if maps.shape[0] == 0:
        raise ValueError("no images to summarise")
    if maps.shape[0] != images.shape[0] or maps.shape[1:] != images.shape[1:3]:
        raise ValueError(f"maps {maps.shape} and images {images.shape} do not match")
    if not (len(image_names) == len(targets) == maps.shape[0]):
        raise ValueError("one name and one target per image are needed")
    values = cell_values(maps, grid)
    mean_abs = np.abs(values).mean(axis=0)
    order = np.lexsort((np.arange(mean_abs.size), -mean_abs))
    return GridSummary(
        grid=(int(grid[0]), int(grid[1])), image_names=list(image_names), targets=[int(t) for t in targets],
        target_names=list(target_names) or [str(int(t)) for t in targets], method=method,
        values=values, intensity=cell_intensity(images, grid), mean_abs=mean_abs, order=order,
    )


def beeswarm_offsets(values: np.ndarray, width: float = 0.4, bins: int = 60) -> np.ndarray:
    """Vertical offsets in [-width, width] that spread dots of one feature row the way
    shap's beeswarm does: dots falling in the same x bin are stacked alternately above
    and below the row line. Deterministic."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    offsets = np.zeros(n)
    if n < 2:
        return offsets
    span = values.max() - values.min()
    binned = np.zeros(n, dtype=int) if span == 0 else np.floor((values - values.min()) / span * (bins - 1)).astype(int)
    layer = np.zeros(n)
    for b in np.unique(binned):
        members = np.flatnonzero(binned == b)
        members = members[np.argsort(values[members], kind="stable")]
        for k, i in enumerate(members):
            layer[i] = (k + 1) // 2 * (1 if k % 2 else -1)
    biggest = np.abs(layer).max()
    return offsets if biggest == 0 else layer / biggest * width


def top_classes(top_k: Sequence[Sequence[tuple[int, str, float]]], k: int) -> np.ndarray:
    """(N, k) class indices from `ModelBundle.top_k` rows."""
    if any(len(row) < k for row in top_k):
        raise ValueError(f"fewer than {k} predictions available")
    return np.array([[int(c) for c, _, _ in row[:k]] for row in top_k], dtype=int)
