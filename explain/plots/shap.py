"""Plotly figures for SHAP: the per-image SHAP image plot, the grid-cell beeswarm and
the mean |SHAP| heatmap over the grid. Same colours as the shap package: red is
positive evidence, blue negative; in the beeswarm blue is low intensity, red high."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shap_grid import GridSummary, beeswarm_offsets, cell_label
from .style import readable

SHAP_RED = "rgb(255,13,87)"
SHAP_BLUE = "rgb(30,136,229)"
# Diverging, transparent at zero (like shap's red_transparent_blue): the photo shows through.
SIGNED_SCALE = [[0.0, SHAP_BLUE], [0.5, "rgba(255,255,255,0)"], [1.0, SHAP_RED]]
LOW_HIGH_SCALE = [[0.0, "rgb(0,138,250)"], [0.5, "rgb(139,70,170)"], [1.0, "rgb(255,0,82)"]]


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool the last two axes by an integer factor (edges cropped): smaller figures."""
    if factor <= 1:
        return array
    h, w = array.shape[-2] // factor * factor, array.shape[-1] // factor * factor
    a = array[..., :h, :w]
    return a.reshape(*a.shape[:-2], h // factor, factor, w // factor, factor).mean(axis=(-3, -1))


def symmetric_limit(maps: np.ndarray, percentile: float = 99.9) -> float:
    """Shared colour limit: the `percentile` of |values| over all maps (as shap.image_plot)."""
    limit = float(np.percentile(np.abs(maps), percentile)) if np.size(maps) else 0.0
    return limit if limit > 0 else float(np.abs(maps).max() or 1.0)


def shap_image_figure(
    image: np.ndarray, maps: np.ndarray, titles: Sequence[str], *, image_title: str = "", max_side: int = 112
) -> go.Figure:
    """The image, then one signed map per class over a faded grey copy of it, all maps on
    one symmetric colour scale. `image` uint8 (H, W, 3), `maps` (k, H, W). Maps are
    average-pooled to at most `max_side` pixels a side to keep the figure light."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or len(titles) != maps.shape[0]:
        raise ValueError("one title per map (k, H, W) is needed")
    factor = max(1, int(np.ceil(max(maps.shape[1:]) / max_side)))
    small = block_mean(maps, factor)
    limit = symmetric_limit(small)
    grey = image.astype(np.float64).mean(axis=2, keepdims=True)
    faded = np.repeat(255 - 0.35 * (255 - grey), 3, axis=2).round().astype(np.uint8)
    k = maps.shape[0]
    fig = make_subplots(rows=1, cols=k + 1, subplot_titles=[image_title or "image", *titles],
                        horizontal_spacing=0.02)
    fig.add_trace(go.Image(z=image, hoverinfo="skip"), row=1, col=1)
    for i in range(k):
        fig.add_trace(go.Image(z=faded, hoverinfo="skip"), row=1, col=i + 2)
        fig.add_trace(go.Heatmap(
            z=small[i].astype(np.float32), x0=(factor - 1) / 2, dx=factor, y0=(factor - 1) / 2, dy=factor,
            zmin=-limit, zmax=limit, colorscale=SIGNED_SCALE, showscale=(i == k - 1),
            colorbar=dict(title="SHAP", len=0.9) if i == k - 1 else None,
            hovertemplate="x %{x:.0f}, y %{y:.0f}<br>SHAP %{z:.3g}<extra>" + _escape(titles[i]) + "</extra>",
        ), row=1, col=i + 2)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    for col in range(2, k + 2):
        fig.update_yaxes(scaleanchor=f"x{col}", row=1, col=col)
    fig.update_layout(height=290, margin=dict(l=5, r=5, t=58, b=5))  # subplot titles below plotly's toolbar
    return fig


def _escape(text: str) -> str:
    """Plotly renders hover text as HTML-ish markup: escape user-controlled names."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def beeswarm_figure(summary: GridSummary, max_features: int = 20) -> go.Figure:
    """shap-style beeswarm: one row per grid cell (most important at the top), one dot
    per image at x = the cell's SHAP value, coloured by the cell's mean intensity;
    hovering a dot names the image and its explained class."""
    order = summary.order[:max_features]
    xs: list[float] = []
    ys: list[float] = []
    colours: list[float] = []
    texts: list[str] = []
    for rank, j in enumerate(order):
        row_y = len(order) - 1 - rank
        values = summary.values[:, j]
        offsets = beeswarm_offsets(values)
        xs.extend(values)
        ys.extend(row_y + offsets)
        colours.extend(summary.intensity[:, j])
        label = cell_label(int(j), summary.grid)
        texts.extend(
            f"{_escape(name)}<br>cell {label}, class {_escape(cls)}<br>SHAP {v:.3g}, intensity {c:.2f}"
            for name, cls, v, c in zip(
                summary.image_names, summary.target_names, values, summary.intensity[:, j], strict=True
            )
        )
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", text=texts, hovertemplate="%{text}<extra></extra>",
        marker=dict(color=colours, colorscale=LOW_HIGH_SCALE, cmin=0, cmax=1, size=8, line=dict(width=0),
                    colorbar=dict(title="Cell intensity", tickvals=[0, 1], ticktext=["low", "high"])),
    ))
    fig.add_vline(x=0, line_color="#999", line_width=1)
    fig.update_yaxes(tickvals=list(range(len(order))),
                     ticktext=[cell_label(int(j), summary.grid) for j in order[::-1]], range=[-0.7, len(order) - 0.3])
    fig.update_xaxes(
        title="SHAP value of the cell (impact on the explained "
              f"class{', ' + _escape(summary.method) if summary.method else ''})"
    )
    return readable(
        fig,
        title=f"Grid cells by mean |SHAP| ({summary.grid[0]} x {summary.grid[1]} grid, {len(summary.image_names)} "
              "images)",
        height=max(300, 28 * len(order) + 110),
    )


def cell_importance_figure(summary: GridSummary, image: np.ndarray | None = None) -> go.Figure:
    """Mean |SHAP| per cell drawn as a heatmap over the grid (optionally over an image
    of the same size, e.g. the mean image), with the cell's value on hover."""
    grid = summary.mean_abs_grid()
    rows, cols = summary.grid
    labels = np.array(summary.labels).reshape(rows, cols)
    fig = go.Figure()
    if image is not None:
        h, w = image.shape[:2]
        fig.add_trace(go.Image(z=image, hoverinfo="skip"))
        x = (np.arange(cols) + 0.5) * w / cols - 0.5
        y = (np.arange(rows) + 0.5) * h / rows - 0.5
        opacity = 0.65
    else:
        x, y, opacity = np.arange(cols), np.arange(rows), 1.0
    fig.add_trace(go.Heatmap(
        z=grid, x=x, y=y, customdata=labels, colorscale="Reds", zmin=0, opacity=opacity,
        colorbar=dict(title="mean |SHAP|"), hovertemplate="cell %{customdata}<br>mean |SHAP| %{z:.3g}<extra></extra>",
    ))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return readable(fig, title="Mean |SHAP| per grid cell", height=380)
