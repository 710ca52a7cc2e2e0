"""Ground truth drawn over a picture: the mask's area tinted and its outline traced, so
the evidence region stays visible over the photo or over a heatmap. Display only."""

from __future__ import annotations

import numpy as np
from PIL import Image

OUTLINE = np.array([0, 255, 255], dtype=np.float32)  # cyan: apart from the heatmaps' reds and blues
TINT = 0.25


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """The mask's border pixels: inside the mask with a 4-neighbour outside it (or at the edge)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def mask_overlay(picture: Image.Image | np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """uint8 RGB `picture` with `mask` (same size, bool) tinted and outlined; unchanged without a mask."""
    image = np.asarray(picture.convert("RGB") if isinstance(picture, Image.Image) else picture).astype(np.float32)
    if mask is None or not mask.any():
        return image.round().astype(np.uint8)
    out = image.copy()
    out[mask] = (1 - TINT) * out[mask] + TINT * OUTLINE
    out[mask_outline(mask)] = OUTLINE
    return out.round().clip(0, 255).astype(np.uint8)
