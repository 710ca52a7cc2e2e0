"""Figures of the model comparison and the mistakes browser: the map drift across
checkpoints, the mean similarity of every pair of models, and the confusion matrix.
Numbers come from `explain.analyses.compare` and `explain.analyses.mistakes`; looks
from `style`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import method_style, readable


def drift_figure(drift: pd.DataFrame, measure_label: str, models: Sequence[str]) -> go.Figure:
    """Per method, the mean similarity of each model's maps to the last model's, in model
    order (`drift` as `ComparisonResult.drift` gives it)."""
    fig = go.Figure()
    methods = list(dict.fromkeys(drift["method"]))
    for n, method in enumerate(methods):
        part = drift[drift["method"] == method].sort_values("model_index")
        style = method_style(n)
        fig.add_trace(go.Scatter(x=part["model"], y=part["similarity"], mode="lines+markers", name=method,
                                 line=style.line(2.2), marker=style.marker(8),
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + method + "</extra>"))
    fig.update_xaxes(title="checkpoint", categoryorder="array", categoryarray=list(models))
    low = min(-0.05, float(np.nanmin(drift["similarity"])) - 0.05)
    fig.update_yaxes(title=f"{measure_label} to {models[-1]}", range=[low, 1.05])
    return readable(fig, title=f"Map drift ({measure_label} to the last checkpoint)", legend_entries=len(methods) // 4)


def pair_matrix_figure(matrix: np.ndarray, models: Sequence[str], title: str) -> go.Figure:
    """Models x models heatmap of a mean similarity, annotated with its values."""
    fig = go.Figure(go.Heatmap(z=matrix, x=list(models), y=list(models), zmin=-1, zmax=1, colorscale="RdBu",
                               text=np.round(matrix, 2), texttemplate="%{text}",
                               hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return readable(fig, title=title)


def confusion_figure(matrix: pd.DataFrame, title: str = "Confusion matrix") -> go.Figure:
    """Counts of true (rows) x predicted (columns) classes; the diagonal is correct."""
    counts = matrix.to_numpy()
    columns, rows = [str(c) for c in matrix.columns], [str(r) for r in matrix.index]
    fig = go.Figure(go.Heatmap(z=counts, x=columns, y=rows, colorscale="Blues", text=counts, texttemplate="%{text}",
                               hoverinfo="none"))
    # One invisible marker per cell: clicking a cell selects its point (heatmaps themselves are not selectable),
    # so a page can list that cell's images.
    fig.add_trace(go.Scatter(x=[c for _ in rows for c in columns], y=[r for r in rows for _ in columns],
                             customdata=counts.ravel(), mode="markers", showlegend=False,
                             marker=dict(size=max(8, 360 // max(1, len(rows))), opacity=0, symbol="square"),
                             hovertemplate="true %{y}, predicted %{x}: %{customdata}<extra></extra>"))
    fig.update_xaxes(title="predicted", type="category", side="bottom")
    fig.update_yaxes(title="true", type="category", autorange="reversed")
    side = max(360, 28 * len(matrix.index) + 140)
    return readable(fig, title=title, height=min(side, 900))
