"""What every metric shares: its metadata and the one shape its curves come in.

Each metric declares a `MetricInfo` next to its code (name, axes, direction, how its
units are aggregated and scored), so pages, reports and tables read it instead of
hard-coding it. Every metric of one method returns `Curves`: one curve per unit (an
image, or a retraining repeat) on a common x grid, and the aggregate curve, score and
spread derived from them as the metric says. Three kinds of score share that shape:

- curves scored by their area (deletion, insertion, SIC, AIC, ROAR, KAR, IROF, the
  model-randomisation similarity against the layers randomised): `mean_auc` or
  `aggregate_auc`;
- one number per unit (infidelity, sensitivity, the random-logit similarity):
  `mean_value`, stored as curves of a single point at x = 0 whose "area" is that value;
  drawn as a strip of units per method, not as curves;
- a comparison of methods (agreement between maps): `Pairs`, one methods x methods
  matrix per unit, whose per-method summary (mean agreement with the other methods)
  is again `mean_value` `Curves`, so tables and batch rows read every metric alike.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

AGGREGATIONS = ("mean", "median")
SCORES = ("mean_auc", "aggregate_auc", "mean_value")


def direction_text(higher_is_better: bool | None) -> str:
    """How a score reads: "higher is better", "lower is better", or neither (agreement)."""
    if higher_is_better is None:
        return "neither direction is better"
    return "higher is better" if higher_is_better else "lower is better"


@dataclass(frozen=True)
class MetricInfo:
    """A metric's metadata.

    `aggregate`: how unit curves combine into the shown curve ("mean" or "median");
    `score`: "mean_auc" (mean of the units' areas, with its standard error),
    "aggregate_auc" (area under the aggregate curve, as PAIR's SIC/AIC) or
    "mean_value" (one value per unit, its mean with the standard error);
    `higher_is_better`: None when neither direction is better (method agreement).
    """

    key: str
    name: str
    higher_is_better: bool | None
    x_label: str
    y_label: str
    description: str
    reference: str
    aggregate: str = "mean"
    score: str = "mean_auc"
    unit: str = "image"

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATIONS or self.score not in SCORES:
            raise ValueError(f"{self.key}: aggregate must be one of {AGGREGATIONS}, score one of {SCORES}")

    @property
    def direction(self) -> str:
        return direction_text(self.higher_is_better)

    @property
    def scalar(self) -> bool:
        """One value per unit (no curve): shown per method as a strip of units."""
        return self.score == "mean_value"

    @property
    def short_name(self) -> str:
        """The name without " AUC" ("Deletion" for "Deletion AUC"), for curve titles."""
        return self.name.removesuffix(" AUC")

    def best(self, scores: dict[str, float]) -> str | None:
        """Key of the best score (NaNs ignored), None when there is none (or no direction)."""
        if self.higher_is_better is None:
            return None
        finite = {k: v for k, v in scores.items() if v is not None and np.isfinite(v)}
        if not finite:
            return None
        pick = max if self.higher_is_better else min
        return pick(finite, key=lambda k: finite[k])


def trapezoid_auc(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Area under curve(s) `y` (..., K) over the points `x` (K,), trapezoid rule."""
    y = np.asarray(y, dtype=np.float64)
    dx = np.diff(np.asarray(x, dtype=np.float64))
    return ((y[..., 1:] + y[..., :-1]) * dx).sum(axis=-1) / 2.0


@dataclass(frozen=True)
class Skipped:
    """A unit (image index, repeat) left out of a metric, and why."""

    index: int
    reason: str


@dataclass(frozen=True, eq=False)
class Curves:
    """One metric's curves for one method.

    `curves[r]` is the curve of unit `kept[r]` on the common grid `x`; units that the
    metric refused are in `skipped`. Everything else is derived per `metric`:
    `aucs` (per unit: the area, or the value of a scalar metric), `aggregate` (mean or
    median curve), `band` (mean ± standard error, for mean aggregates of two or more
    units), `score` and `spread`. `x_labels` name the x points where numbers alone do
    not (e.g. the last layer randomised at each step).
    """

    metric: MetricInfo
    method: str
    x: np.ndarray
    curves: np.ndarray
    kept: tuple[int, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    extra: dict = field(default_factory=dict)  # metric-specific numbers worth a table column
    x_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        curves = np.asarray(self.curves, dtype=np.float64).reshape(-1, len(self.x))
        object.__setattr__(self, "curves", curves)
        object.__setattr__(self, "x", np.asarray(self.x, dtype=np.float64))
        if not self.kept:
            object.__setattr__(self, "kept", tuple(range(curves.shape[0])))
        if len(self.kept) != curves.shape[0]:
            raise ValueError(f"{len(self.kept)} kept units for {curves.shape[0]} curves")
        if self.x_labels and len(self.x_labels) != len(self.x):
            raise ValueError(f"{len(self.x_labels)} x labels for {len(self.x)} x points")
        if self.metric.scalar and len(self.x) != 1:
            raise ValueError(f"{self.metric.key} has one value per unit: x must be a single point")

    @property
    def num_units(self) -> int:
        return int(self.curves.shape[0])

    @cached_property
    def aucs(self) -> np.ndarray:
        """Each unit's score: the area under its curve, or its value for a scalar metric."""
        if self.metric.scalar:
            return self.curves[:, 0].copy()
        return trapezoid_auc(self.curves, self.x) if self.num_units else np.zeros(0)

    @cached_property
    def aggregate(self) -> np.ndarray:
        """Mean or median over units at each x; points no unit has yet (NaN: a run still
        in progress) stay NaN, points some units have use those."""
        if not self.num_units:
            return np.full(self.x.shape, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            if self.metric.aggregate == "median":
                return np.nanmedian(self.curves, axis=0)
            return np.nanmean(self.curves, axis=0)

    @property
    def band(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean ± one standard error, where that means something (mean, 2+ units)."""
        if self.metric.aggregate != "mean" or self.num_units < 2:
            return None
        sem = self.curves.std(axis=0, ddof=1) / np.sqrt(self.num_units)
        return self.aggregate - sem, self.aggregate + sem

    @property
    def score(self) -> float:
        """The metric's score; NaN until every unit's curve is complete."""
        if not self.num_units or not np.isfinite(self.curves).all():
            return float("nan")
        if self.metric.score == "aggregate_auc":
            return float(trapezoid_auc(self.aggregate, self.x))
        return float(self.aucs.mean())

    @property
    def spread(self) -> float:
        """Standard error of the mean of the units' areas (NaN for fewer than 2 units)."""
        if self.num_units < 2:
            return float("nan")
        return float(self.aucs.std(ddof=1) / np.sqrt(self.num_units))


@dataclass(frozen=True, eq=False)
class Pairs:
    """A comparison of methods: `values[u, i, j]` compares method `methods[i]` with
    `methods[j]` on unit `u` (an image). `matrix` is the mean over units; `per_method()`
    each method's mean agreement with the *other* methods, per unit, as scalar `Curves`
    of the same `MetricInfo` (so score tables and batch rows read it like any metric)."""

    metric: MetricInfo
    methods: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        m = len(self.methods)
        if values.ndim != 3 or values.shape[1:] != (m, m):
            raise ValueError(f"expected (units, {m}, {m}) values for {m} methods, got {values.shape}")
        if not self.metric.scalar:
            raise ValueError(f"{self.metric.key}: a comparison's per-method summary is one value per unit (mean_value)")
        object.__setattr__(self, "values", values)

    @property
    def num_units(self) -> int:
        return int(self.values.shape[0])

    @property
    def matrix(self) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.values, axis=0) if self.num_units else np.full(self.values.shape[1:], np.nan)

    def per_method(self) -> dict[str, Curves]:
        """Per method, each unit's mean over the other methods (NaN with a single method)."""
        m = len(self.methods)
        out = {}
        for i, ident in enumerate(self.methods):
            others = [j for j in range(m) if j != i]
            values = self.values[:, i, others].mean(axis=1) if others else np.full(self.num_units, np.nan)
            out[ident] = Curves(self.metric, ident, np.zeros(1), values[:, None])
        return out
