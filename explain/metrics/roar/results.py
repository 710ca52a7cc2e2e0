"""ROAR results as pages and reports show them: one curve per method, the base
model's accuracy, progress, and the area under each curve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ...data.training import LabelledImages
from ...models.small_cnn import architecture_name
from ..base import MetricInfo, trapezoid_auc
from .settings import RoarSettings, entry_key


@dataclass(frozen=True)
class RoarCurve:
    method: str  # ident
    label: str
    fractions: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    repeats: tuple[int, ...]
    auc: float | None  # None until every fraction is done


@dataclass(frozen=True)
class RoarSummary:
    """What pages and reports show: curves, the base model's accuracy, progress."""

    dataset: str
    architecture: str
    mode: str
    metric: MetricInfo
    base_accuracy: float | None
    curves: tuple[RoarCurve, ...]
    fractions: tuple[float, ...]
    repeats: int
    done: int
    total: int
    timings: dict[str, float]

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.done >= self.total

    def table(self) -> list[dict[str, Any]]:
        """One row per method: its label, the accuracy at each fraction done ('' if not yet) and
        the AUC (None until the curve is complete)."""
        rows = []
        for curve in self.curves:
            row: dict[str, Any] = {"method": curve.label}
            done = dict(zip(curve.fractions, zip(curve.mean, curve.std, curve.repeats)))
            for f in self.fractions:
                if f in done:
                    m, s, r = done[f]
                    row[f"{f:.0%}"] = f"{m:.3f}" + (f" ± {s:.3f}" if r > 1 else "") + ("" if r >= self.repeats else f" ({r}/{self.repeats})")
                else:
                    row[f"{f:.0%}"] = ""
            row[self.metric.name] = None if curve.auc is None else round(curve.auc, 4)
            rows.append(row)
        return rows


def curve_auc(fractions: Sequence[float], accuracies: Sequence[float], base_accuracy: float, mode: str) -> float:
    """Trapezoid area under accuracy vs fraction over [0, last fraction], starting from the
    base model's accuracy at 0 (ROAR: nothing removed); for KAR the curve is read as
    accuracy vs fraction kept and starts at the first fraction."""
    x = np.asarray(fractions, dtype=float)
    y = np.asarray(accuracies, dtype=float)
    if mode == "roar":
        x, y = np.concatenate([[0.0], x]), np.concatenate([[base_accuracy], y])
    if len(x) < 2:
        return float(y[0]) if len(y) else float("nan")
    return float(trapezoid_auc(y, x))


def summarize(record: Mapping[str, Any], dataset: LabelledImages, settings: RoarSettings) -> RoarSummary:
    """Curves for the settings' methods from a result record (complete or not)."""
    entries = record.get("entries", {})
    base = record.get("base_accuracy")
    curves = []
    done = 0
    for method in settings.all_methods:
        fs, means, stds, counts = [], [], [], []
        for f in settings.fractions:
            accs = [entries[k]["accuracy"] for r in range(settings.repeats) if (k := entry_key(method, f, r)) in entries]
            done += len(accs)
            if accs:
                fs.append(f)
                means.append(float(np.mean(accs)))
                stds.append(float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0)
                counts.append(len(accs))
        complete = len(fs) == len(settings.fractions) and all(c == settings.repeats for c in counts)
        auc = curve_auc(fs, means, base, settings.mode) if complete and base is not None else None
        curves.append(RoarCurve(method.ident, method.label, tuple(fs), tuple(means), tuple(stds), tuple(counts), auc))
    return RoarSummary(
        dataset=dataset.describe(), architecture=architecture_name(dataset, settings.recipe), mode=settings.mode,
        metric=settings.metric, base_accuracy=base, curves=tuple(curves), fractions=settings.fractions,
        repeats=settings.repeats, done=done, total=len(settings.all_methods) * len(settings.fractions) * settings.repeats,
        timings=dict(record.get("timings", {})),
    )
