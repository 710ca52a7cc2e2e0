"""Figures that compare checkpoints: one score per method across checkpoints beside each
checkpoint's accuracy, and one score per class and method. Numbers come from
`explain.evaluation.summary`; looks from `style`."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import BASELINE_COLOUR, method_style, readable


def _errors(frame: pd.DataFrame) -> dict:
    """Asymmetric error bars from `mean`, `low` and `high` (none where the interval is NaN)."""
    plus = (frame["high"] - frame["mean"]).to_numpy(dtype=float)
    minus = (frame["mean"] - frame["low"]).to_numpy(dtype=float)
    return dict(type="data", symmetric=False, array=np.nan_to_num(plus), arrayminus=np.nan_to_num(minus), thickness=1.2)


def checkpoint_figure(scores: pd.DataFrame, accuracy: pd.DataFrame, labels: Mapping[str, str], score_name: str,
                      direction: str) -> go.Figure:
    """Left: the score's mean per method (95 % interval as error bars) at each checkpoint,
    in checkpoint order; right: each checkpoint's accuracy with its interval.
    `scores` has model_index, model, method, mean, low, high; `accuracy` as
    `summary.accuracy` gives it."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28], horizontal_spacing=0.1,
                        subplot_titles=(f"{score_name} ({direction})", "accuracy"))
    order = (
        accuracy.sort_values("model_index")["model"].tolist()
        if not accuracy.empty
        else sorted(scores["model"].unique())
    )
    for n, method in enumerate(labels):
        part = scores[scores["method"] == method].sort_values("model_index")
        if part.empty:
            continue
        style = method_style(n)
        fig.add_trace(go.Scatter(x=part["model"], y=part["mean"], mode="lines+markers", name=labels[method],
                                 line=style.line(2.2), marker=style.marker(8), error_y=_errors(part),
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + labels[method] + "</extra>"), row=1, col=1)
    if not accuracy.empty:
        acc = accuracy.sort_values("model_index")
        fig.add_trace(go.Bar(x=acc["model"], y=acc["accuracy"], name="accuracy", marker_color=BASELINE_COLOUR,
                             error_y=_errors(acc.rename(columns={"accuracy": "mean", "accuracy_low": "low",
                                                                 "accuracy_high": "high"})),
                             showlegend=False, hovertemplate="%{x}: %{y:.3f}<extra>accuracy</extra>"), row=1, col=2)
        fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_xaxes(categoryorder="array", categoryarray=order, title_text="checkpoint", row=1, col=1)
    fig.update_xaxes(categoryorder="array", categoryarray=order, row=1, col=2)
    fig.update_yaxes(title_text=f"mean per-image {score_name}", row=1, col=1)
    return readable(fig, legend_entries=len(labels), height=380)


def class_figure(table: pd.DataFrame, labels: Mapping[str, str], score_name: str, higher_is_better: bool | None,
                 direction: str) -> go.Figure:
    """Heatmap of the mean score per class (rows) and method (columns), each cell
    labelled with its value; class rows are named with their accuracy."""
    methods = [m for m in labels if m in table.columns]
    values = table[methods].to_numpy(dtype=float)
    rows = [f"{label} (acc {acc:.2f}, {n} img)" if np.isfinite(acc) else f"{label} ({n} img)"
            for label, acc, n in zip(table.index, table["accuracy"], table["images"], strict=True)]
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[labels[m] for m in methods],
            y=rows,
            colorscale="Viridis_r" if higher_is_better is False else "Viridis",
            text=np.vectorize(lambda v: "" if not np.isfinite(v) else f"{v:.3f}")(values),
            texttemplate="%{text}",
            colorbar=dict(title=dict(text=score_name)),
            hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="class")
    fig.update_xaxes(title_text="method")
    return readable(fig, title=f"{score_name} per class ({direction})",
                    height=max(300, 26 * len(rows) + 160))
