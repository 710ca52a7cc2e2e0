"""Turning attribution maps into pictures: normalisation, colormaps, overlays.

Display only; the numbers in metrics always use the raw maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import numpy as np

COLORMAPS = ("jet", "inferno", "viridis", "magma", "turbo", "hot", "bwr", "RdBu_r", "coolwarm", "seismic")
SIGNED_COLORMAPS = ("bwr", "RdBu_r", "coolwarm", "seismic")


@dataclass(frozen=True)
class DisplaySettings:
    """How a map is shown: `sign` is "absolute" (|map|, 0..1), "positive" (negatives
    cut) or "signed" (-1..1, diverging colormap); values are divided by the
    `clip_percentile`-th percentile of |map| and clipped (per map)."""

    colormap: str = "jet"
    opacity: float = 0.5
    clip_percentile: float = 99.0
    sign: str = "absolute"


SIGN_MODES = ("absolute", "positive", "signed")


def normalize_map(attribution: np.ndarray, sign: str = "absolute", clip_percentile: float = 99.0) -> np.ndarray:
    """Scale one map to [0, 1] ("absolute", "positive") or [-1, 1] ("signed")."""
    if sign not in SIGN_MODES:
        raise ValueError(f"sign must be one of {SIGN_MODES}")
    a = np.asarray(attribution, dtype=np.float64)
    if sign == "absolute":
        a = np.abs(a)
    elif sign == "positive":
        a = np.clip(a, 0, None)
    scale = np.percentile(np.abs(a), clip_percentile) if clip_percentile < 100 else np.abs(a).max()
    if not np.isfinite(scale) or scale <= 0:
        scale = np.abs(a).max()
    if scale <= 0:
        return np.zeros_like(a, dtype=np.float32)
    lo = -1.0 if sign == "signed" else 0.0
    return np.clip(a / scale, lo, 1.0).astype(np.float32)


def colorize(normalized: np.ndarray, colormap: str, signed: bool) -> np.ndarray:
    """[0,1] or [-1,1] map -> uint8 RGB via a matplotlib colormap."""
    values = (normalized + 1) / 2 if signed else normalized
    rgba = matplotlib.colormaps[colormap](values)
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(image: np.ndarray, attribution: np.ndarray, settings: DisplaySettings = DisplaySettings()) -> np.ndarray:
    """Heatmap of `attribution` blended over a uint8 RGB `image` of the same size.

    In "absolute"/"positive" mode the opacity also scales with the map value, so
    unimportant regions show the photo; in "signed" mode zero is the colormap's middle.
    """
    signed = settings.sign == "signed"
    norm = normalize_map(attribution, settings.sign, settings.clip_percentile)
    heat = colorize(norm, settings.colormap, signed).astype(np.float32)
    alpha = settings.opacity * (np.abs(norm) if signed else np.sqrt(norm))[..., None]
    blended = (1 - alpha) * image.astype(np.float32) + alpha * heat
    return blended.round().clip(0, 255).astype(np.uint8)
