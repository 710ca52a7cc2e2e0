"""Plotly figures and AUC tables for the faithfulness metrics (deletion/insertion, SIC/AIC, ROAR).

Axis titles and the direction of each score come from the metrics' `MetricInfo`; each
method's look (colour, dash, marker) and the layout come from `style`.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..metrics import CurveSet, MetricInfo, PicCurves
from .style import BASELINE_STYLE, method_style, readable


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig: go.Figure, metric: MetricInfo, title: str, methods: int) -> go.Figure:
    fig.update_layout(xaxis_title=metric.x_label, yaxis_title=metric.y_label, hovermode="x unified")
    fig.update_xaxes(range=[0, 1])
    return readable(fig, title=title, legend_entries=methods)


def curves_figure(curve_sets: Mapping[str, CurveSet], labels: Mapping[str, str], show_images: bool = True) -> go.Figure:
    """One look per method: the mean curve over images with a band of one standard
    error, and each image's curve as a thin line (when `show_images`)."""
    fig = go.Figure()
    metric = None
    for n, (key, cs) in enumerate(curve_sets.items()):
        metric = cs.metric
        style = method_style(n)
        colour = style.colour
        label = labels.get(key, key)
        mean, sem = cs.mean_curve, cs.sem_curve
        if show_images and cs.num_images > 1:
            for i, curve in enumerate(cs.curves):
                fig.add_trace(go.Scatter(
                    x=cs.x, y=curve, mode="lines", line=dict(color=_rgba(colour, 0.35), width=1),
                    legendgroup=key, showlegend=False, hoverinfo="skip", name=f"{label} image {i + 1}",
                ))
        if cs.num_images > 1:
            fig.add_trace(go.Scatter(
                x=np.concatenate([cs.x, cs.x[::-1]]), y=np.concatenate([mean + sem, (mean - sem)[::-1]]),
                fill="toself", fillcolor=_rgba(colour, 0.2), line=dict(width=0), legendgroup=key,
                showlegend=False, hoverinfo="skip", name=f"{label} ± s.e.",
            ))
        fig.add_trace(go.Scatter(
            x=cs.x, y=mean, mode="lines+markers", line=style.line(3), marker=style.marker(), legendgroup=key,
            name=f"{label} (AUC {cs.mean_auc:.3f})",
        ))
    if metric is None:
        return fig
    return _layout(fig, metric, f"{metric.name.replace(' AUC', '')} curve ({metric.direction} AUC)", len(curve_sets))


def pic_figure(pic_curves: Mapping[str, PicCurves], labels: Mapping[str, str], show_images: bool = False) -> go.Figure:
    """Aggregate SIC (median) or AIC (mean) curve per method, optionally with each kept
    image's curve as a thin line."""
    fig = go.Figure()
    metric = None
    for n, (key, pc) in enumerate(pic_curves.items()):
        metric = pc.metric
        style = method_style(n)
        colour = style.colour
        label = labels.get(key, key)
        if show_images:
            for i, curve in zip(pc.kept, pc.curves):
                fig.add_trace(go.Scatter(
                    x=pc.x, y=curve, mode="lines", line=dict(color=_rgba(colour, 0.3), width=1),
                    legendgroup=key, showlegend=False, hoverinfo="skip", name=f"{label} image {i + 1}",
                ))
        if pc.kept:
            fig.add_trace(go.Scatter(
                x=pc.x, y=pc.aggregate, mode="lines+markers", line=style.line(3), marker=style.marker(),
                legendgroup=key, name=f"{label} (AUC {pc.auc:.3f})",
            ))
    if metric is None:
        return fig
    return _layout(fig, metric, f"{metric.name.replace(' AUC', '')} over {len(next(iter(pic_curves.values())).kept)} images",
                   len(pic_curves))


def auc_table(columns: Sequence[Mapping[str, CurveSet]], labels: Mapping[str, str]) -> pd.DataFrame:
    """Rows = methods; per metric a "mean ± s.e." pair of columns over images."""
    methods = list(columns[0]) if columns else []
    table: dict[str, list] = {"method": [labels.get(k, k) for k in methods]}
    for curve_sets in columns:
        metric = next(iter(curve_sets.values())).metric
        table[f"{metric.name} (mean)"] = [curve_sets[k].mean_auc for k in methods]
        table[f"{metric.name} (s.e.)"] = [curve_sets[k].sem_auc for k in methods]
    return pd.DataFrame(table).set_index("method")


def pic_table(sic: Mapping[str, PicCurves], aic: Mapping[str, PicCurves], labels: Mapping[str, str]) -> pd.DataFrame:
    """Rows = methods: AUC of the aggregate SIC and AIC curves, mean per-image AUCs, images used."""
    methods = list(sic)
    rows = {
        "method": [labels.get(k, k) for k in methods],
        f"{sic[methods[0]].metric.name} (median curve)" if methods else "SIC": [sic[k].auc for k in methods],
        f"{aic[methods[0]].metric.name} (mean curve)" if methods else "AIC": [aic[k].auc for k in methods],
        "SIC per-image AUC (mean)": [float(np.mean(sic[k].aucs)) if len(sic[k].aucs) else float("nan") for k in methods],
        "images used (SIC / AIC)": [f"{len(sic[k].kept)} / {len(aic[k].kept)}" for k in methods],
    }
    return pd.DataFrame(rows).set_index("method")


def highlight_best(table: pd.DataFrame, metrics: Mapping[str, MetricInfo]):
    """A pandas Styler with the best value of each named column in bold green; `metrics`
    maps column name -> metric, whose `higher_is_better` decides what "best" is."""
    styler = table.style.format(precision=3)
    for column, metric in metrics.items():
        if column not in table:
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().any():
            best = values.idxmax() if metric.higher_is_better else values.idxmin()
            styler = styler.apply(
                lambda col, best=best: ["font-weight: bold; background-color: rgba(0,160,0,0.25)" if i == best else "" for i in col.index],
                subset=[column],
            )
    return styler


def roar_figure(summary) -> go.Figure:
    """ROAR/KAR curves: test accuracy against the fraction of pixels removed (kept for
    KAR), one line per method (its own colour, dash and marker), the random baseline
    grey and dashed, the unmodified model's accuracy as a dotted line; error bars (std
    over repeats) when repeats > 1. `summary` is an `explain.metrics.roar.RoarSummary`."""
    fig = go.Figure()
    styles = (method_style(i) for i in itertools.count())
    for curve in summary.curves:
        style = BASELINE_STYLE if curve.method == "random" else next(styles)
        fig.add_trace(go.Scatter(
            x=[100 * f for f in curve.fractions], y=list(curve.mean), name=curve.label, mode="lines+markers",
            line=style.line(), marker=style.marker(9),
            error_y={"type": "data", "array": list(curve.std), "visible": summary.repeats > 1},
        ))
    if summary.base_accuracy is not None:
        fig.add_hline(y=summary.base_accuracy, line_dash="dot", line_color="black",
                      annotation_text=f"unmodified model {summary.base_accuracy:.3f}", annotation_position="top left")
    removed = "kept (KAR)" if summary.mode == "kar" else "removed (ROAR)"
    fig.update_layout(
        xaxis_title=f"% of pixels {removed}", yaxis_title="test accuracy after retraining",
        yaxis_range=[0, 1.02], legend_title="ranking",
    )
    fig.update_yaxes(tickformat=".1f")
    return readable(fig, legend_entries=len(summary.curves))
