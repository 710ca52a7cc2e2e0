"""One figure builder and one table builder for every curve metric (deletion, insertion,
SIC, AIC, ROAR, KAR and any metric registered later).

Both read each curve set's `MetricInfo` (axis titles, direction, how it is scored), so
no page or report picks an axis title, a column or a "best" by hand. Tables name
their columns after the metric (`score_column`, `spread_column`), and
`table_metrics` says which column is which metric. Each method's look (colour, dash,
marker) and the layout come from `style`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..metrics.base import Curves, MetricInfo
from .style import BASELINE_STYLE, method_style, readable


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def score_text(curves: Curves) -> str:
    return "n/a" if not np.isfinite(curves.score) else f"{curves.score:.3f}"


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
    are drawn grey and dashed. `x_scale` rescales x for display (100: percentages)."""
    fig = go.Figure()
    metric = None
    for n, (key, cs) in enumerate(curve_sets.items()):
        metric = cs.metric
        style = BASELINE_STYLE if key in baselines else method_style(n)
        colour = style.colour
        label = labels.get(key, key)
        x = cs.x * x_scale
        if show_units and cs.num_units > 1:
            for unit, curve in zip(cs.kept, cs.curves):
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
    if metric is None:
        return fig
    fig.update_layout(xaxis_title=metric.x_label, yaxis_title=metric.y_label, hovermode="x unified")
    return readable(fig, title=title or f"{metric.short_name} ({metric.direction}; {metric.aggregate} over {metric.unit}s)",
                    legend_entries=len(curve_sets))


def score_column(metric: MetricInfo) -> str:
    return metric.name


def spread_column(metric: MetricInfo) -> str:
    return f"{metric.name} s.e."


def score_table(
    results: Mapping[str, Mapping[str, Curves]], labels: Mapping[str, str], *, points: bool = False
) -> pd.DataFrame:
    """Rows = methods (by label); per metric its score, the standard error where the
    score is a mean over units, and the units used when some were skipped. With
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
        if metric.score == "mean_auc":
            table[spread_column(metric)] = [sets[k].spread if k in sets else float("nan") for k in methods]
        if any(k in sets and sets[k].skipped for k in methods):
            table[f"{metric.short_name} {metric.unit}s used"] = [
                f"{sets[k].num_units} of {sets[k].num_units + len(sets[k].skipped)}" if k in sets else "" for k in methods
            ]
    return pd.DataFrame(table).set_index("method")


def table_metrics(results: Mapping[str, Mapping[str, Curves]]) -> dict[str, MetricInfo]:
    """Score column name -> its metric, for highlighting the best value of each."""
    return {score_column(next(iter(sets.values())).metric): next(iter(sets.values())).metric for sets in results.values() if sets}


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
    styler = table.style.format(precision=3, na_rep="—")
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
