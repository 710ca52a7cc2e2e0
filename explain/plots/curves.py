"""One figure builder and one table builder for every metric (deletion, insertion,
SIC, AIC, ROAR, KAR, the sanity checks and any metric registered later), and one
heatmap builder for comparisons of methods (`Pairs`).

All read each result's `MetricInfo` (axis titles, direction, how it is scored), so
no page or report picks an axis title, a column or a "best" by hand: curve metrics
are drawn as curves (x labels where the metric names its points), scalar metrics (one
value per image) as a strip of images per method with the mean. Tables name
their columns after the metric (`score_column`, `spread_column`), and
`table_metrics` says which column is which metric. Each method's look (colour, dash,
marker) and the layout come from `style`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..metrics.base import Curves, MetricInfo, Pairs
from .style import BASELINE_STYLE, method_style, readable


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def number_text(value: float) -> str:
    """Three decimals, or three significant digits where three decimals would show a
    nonzero value as 0 (relative representation stability lives near 1e-5)."""
    text = f"{value:.3f}"
    return f"{value:.3g}" if value != 0 and float(text) == 0 else text


def score_text(curves: Curves) -> str:
    return "n/a" if not np.isfinite(curves.score) else number_text(curves.score)


def curves_figure(
    curve_sets: Mapping[str, Curves],
    labels: Mapping[str, str],
    *,
    show_units: bool = False,
    baselines: Sequence[str] = (),
    x_scale: float = 1.0,
    title: str | None = None,
) -> go.Figure:
    """One metric's curves: per method the aggregate curve (its score in the legend), a
    band of one standard error where the metric has one, and each unit's curve as a
    thin line when `show_units`. Methods in `baselines` (e.g. ROAR's random ranking)
    are drawn grey and dashed. `x_scale` rescales x for display (100: percentages).
    A scalar metric (one value per unit) is drawn by `values_figure` instead."""
    first = next(iter(curve_sets.values()), None)
    if first is not None and first.metric.scalar:
        return values_figure(curve_sets, labels, baselines=baselines, title=title)
    fig = go.Figure()
    metric = None
    for n, (key, cs) in enumerate(curve_sets.items()):
        metric = cs.metric
        style = BASELINE_STYLE if key in baselines else method_style(n)
        colour = style.colour
        label = labels.get(key, key)
        x = cs.x * x_scale
        if show_units and cs.num_units > 1:
            for unit, curve in zip(cs.kept, cs.curves, strict=True):
                fig.add_trace(go.Scatter(
                    x=x, y=curve, mode="lines", line=dict(color=_rgba(colour, 0.35), width=1), legendgroup=key,
                    showlegend=False, hoverinfo="skip", name=f"{label} {cs.metric.unit} {unit + 1}",
                ))
        band = cs.band
        if band is not None:
            fig.add_trace(go.Scatter(
                x=np.concatenate([x, x[::-1]]), y=np.concatenate([band[1], band[0][::-1]]), fill="toself",
                fillcolor=_rgba(colour, 0.18), line=dict(width=0), legendgroup=key, showlegend=False, hoverinfo="skip",
                name=f"{label} ± s.e.",
            ))
        if cs.num_units:
            fig.add_trace(go.Scatter(
                x=x, y=cs.aggregate, mode="lines+markers", line=style.line(2.5), marker=style.marker(),
                legendgroup=key, name=f"{label} ({score_text(cs)})",
            ))
    if metric is None or first is None:
        return fig
    fig.update_layout(xaxis_title=metric.x_label, yaxis_title=metric.y_label, hovermode="x unified")
    if first.x_labels:
        fig.update_xaxes(
            tickmode="array", tickvals=list(first.x * x_scale), ticktext=list(first.x_labels), tickangle=-45
        )
    return readable(
        fig,
        title=title or f"{metric.short_name} ({metric.direction}; {metric.aggregate} over {metric.unit}s)",
        legend_entries=len(curve_sets),
    )


def values_figure(
    curve_sets: Mapping[str, Curves],
    labels: Mapping[str, str],
    *,
    baselines: Sequence[str] = (),
    title: str | None = None,
) -> go.Figure:
    """A scalar metric: per method (one column each) every unit's value as a dot and
    the mean with one standard error as a bar, the score in the tick label."""
    fig = go.Figure()
    metric = None
    for n, (key, cs) in enumerate(curve_sets.items()):
        metric = cs.metric
        style = BASELINE_STYLE if key in baselines else method_style(n)
        name = f"{labels.get(key, key)} ({score_text(cs)})"
        values = cs.aucs
        fig.add_trace(
            go.Box(
                y=values,
                x=[name] * len(values),
                name=name,
                boxpoints="all",
                jitter=0.35,
                pointpos=0,
                fillcolor="rgba(0,0,0,0)",
                line=dict(color="rgba(0,0,0,0)"),
                marker=dict(color=style.colour, symbol=style.symbol, size=7),
                hoveron="points",
                hovertext=[f"{cs.metric.unit} {u + 1}" for u in cs.kept],
                showlegend=False,
            )
        )
        if cs.num_units:
            sem = cs.spread if np.isfinite(cs.spread) else 0.0
            fig.add_trace(go.Scatter(
                x=[name], y=[cs.score if np.isfinite(cs.score) else float(np.nanmean(values))], mode="markers",
                marker=dict(color=style.colour, symbol="line-ew-open", size=28, line=dict(width=3)),
                error_y=dict(type="data", array=[sem], color=style.colour, thickness=2, width=10),
                name=f"{name} mean ± s.e.", showlegend=False, hoverinfo="y",
            ))
    if metric is None:
        return fig
    fig.update_layout(
        yaxis_title=metric.y_label, xaxis_title=f"each dot one {metric.unit}; bar: mean ± s.e.", boxmode="overlay"
    )
    return readable(fig, title=title or f"{metric.name} ({metric.direction})")


def pairs_figure(pairs: Pairs, labels: Mapping[str, str], unit_names: Sequence[str] = ()) -> go.Figure:
    """A comparison of methods: the methods x methods matrix, averaged over units, as an
    annotated heatmap; a menu switches to each unit's own matrix (`unit_names` name them)."""
    names = [labels.get(k, k) for k in pairs.methods]
    metric = pairs.metric
    views = [("mean over " + f"{pairs.num_units} {metric.unit}s", pairs.matrix)]
    views += [
        (str(unit_names[u]) if u < len(unit_names) else f"{metric.unit} {u + 1}", pairs.values[u])
        for u in range(pairs.num_units)
    ]
    text = [[[f"{v:.2f}" for v in row] for row in matrix] for _, matrix in views]
    fig = go.Figure(go.Heatmap(
        z=views[0][1], x=names, y=names, zmin=-1 if (pairs.values < 0).any() else 0, zmax=1, colorscale="Viridis",
        text=text[0], texttemplate="%{text}", hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        colorbar=dict(thickness=12),
    ))
    if pairs.num_units > 1:
        fig.update_layout(
            updatemenus=[
                dict(
                    buttons=[
                        dict(label=label, method="restyle", args=[{"z": [np.asarray(matrix).tolist()], "text": [t]}])
                        for (label, matrix), t in zip(views, text, strict=True)
                    ],
                    direction="down",
                    x=1,
                    xanchor="right",
                    y=1.02,
                    yanchor="bottom",
                    showactive=True,
                )
            ]
        )
    fig.update_yaxes(autorange="reversed")
    side = 320 + 28 * len(names)
    return readable(fig, title=metric.name if pairs.num_units > 1 else f"{metric.name} ({views[0][0]})", height=side)


def score_column(metric: MetricInfo) -> str:
    return metric.name


def spread_column(metric: MetricInfo) -> str:
    return f"{metric.name} s.e."


def score_table(
    results: Mapping[str, Mapping[str, Curves]], labels: Mapping[str, str], *, points: bool = False
) -> pd.DataFrame:
    """Rows = methods (by label); per metric its score, the standard error where the
    score is a mean over units (when some method has two units or more), and the units used when some were skipped. With
    `points`, the aggregate value at each x too (ROAR: accuracy at each fraction)."""
    per_metric = [sets for sets in results.values() if sets]
    methods = list(dict.fromkeys(k for sets in per_metric for k in sets))
    table: dict[str, list] = {"method": [labels.get(k, k) for k in methods]}
    for sets in per_metric:
        metric = next(iter(sets.values())).metric
        if points:
            x = next(iter(sets.values())).x
            for j, value in enumerate(x):
                table[f"{value:.0%}" if value <= 1 else f"{value:g}"] = [
                    float(sets[k].aggregate[j]) if k in sets and sets[k].num_units else float("nan") for k in methods
                ]
        table[score_column(metric)] = [sets[k].score if k in sets else float("nan") for k in methods]
        if metric.score in ("mean_auc", "mean_value"):
            spreads = [sets[k].spread if k in sets else float("nan") for k in methods]
            if np.isfinite(spreads).any():  # one unit has no standard error: no column of blanks
                table[spread_column(metric)] = spreads
        if any(k in sets and sets[k].skipped for k in methods):
            table[f"{metric.short_name} {metric.unit}s used"] = [
                f"{sets[k].num_units} of {sets[k].num_units + len(sets[k].skipped)}" if k in sets else ""
                for k in methods
            ]
    return pd.DataFrame(table).set_index("method")


def table_metrics(results: Mapping[str, Mapping[str, Curves]]) -> dict[str, MetricInfo]:
    """Score column name -> its metric, for highlighting the best value of each."""
    return {
        score_column(next(iter(sets.values())).metric): next(iter(sets.values())).metric
        for sets in results.values()
        if sets
    }


def best_methods(results: Mapping[str, Mapping[str, Curves]], labels: Mapping[str, str]) -> dict[str, str | None]:
    """Per metric key: the label of the best method by the metric's own direction."""
    out = {}
    for key, sets in results.items():
        if not sets:
            continue
        metric = next(iter(sets.values())).metric
        best = metric.best({k: c.score for k, c in sets.items()})
        out[key] = labels.get(best, best) if best is not None else None
    return out


def highlight_best(table: pd.DataFrame, metrics: Mapping[str, MetricInfo]):
    """A pandas Styler with the best value of each named column in bold green; `metrics`
    maps column name -> metric, whose `higher_is_better` decides what "best" is."""
    styler = table.style.format(
        lambda v: number_text(float(v)) if isinstance(v, (float, np.floating)) else str(v), na_rep="—")
    for column, metric in metrics.items():
        if column not in table or metric.higher_is_better is None:
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().any():
            best = values.idxmax() if metric.higher_is_better else values.idxmin()
            styler = styler.apply(
                lambda col, best=best: [
                    "font-weight: bold; background-color: rgba(0,160,0,0.25)" if i == best else "" for i in col.index
                ],
                subset=[column],
            )
    return styler
