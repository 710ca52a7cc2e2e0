"""A job's progress: units done of a total, what it is doing now, its own rate and ETA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    """Where a job stands: `done` of `total` units (e.g. forward passes), what it is
    doing now (`label`), and its rate over the units it computed itself (units found
    in the store count as done but not towards the rate)."""

    done: float = 0.0
    total: float = 0.0
    unit: str = "steps"
    label: str = ""
    computed: float = 0.0
    computing_seconds: float = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def rate(self) -> float | None:
        """Units per second of this run's own work; None before any was measured."""
        if self.computed <= 0 or self.computing_seconds <= 0:
            return None
        return self.computed / self.computing_seconds

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate
        if rate is None or self.total <= 0:
            return None
        return max(0.0, self.total - self.done) / rate

    def describe(self) -> str:
        """'12/40 passes · 3.1/s · about 9 s left · Integrated Gradients: coffee'."""
        parts = [f"{_number(self.done)}/{_number(self.total)} {self.unit}" if self.total else "starting"]
        if self.rate is not None:
            parts.append(f"{self.rate:.3g} {self.unit}/s")
        if self.eta_seconds is not None and self.done < self.total:
            parts.append(f"about {format_seconds(self.eta_seconds)} left")
        if self.label:
            parts.append(self.label)
        return " · ".join(parts)

    def to_record(self) -> dict[str, Any]:
        return {"done": self.done, "total": self.total, "unit": self.unit, "label": self.label,
                "computed": self.computed, "computing_seconds": self.computing_seconds}


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_from_record(record: dict[str, Any]) -> Progress:
    """The progress stored in a job record (`Progress.to_record`), without its label."""
    p = record.get("progress") or {}
    try:
        return Progress(float(p.get("done", 0)), float(p.get("total", 0)), str(p.get("unit", "steps")), "",
                        float(p.get("computed", 0)), float(p.get("computing_seconds", 0)))
    except (TypeError, ValueError):
        return Progress()
