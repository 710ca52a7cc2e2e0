"""What a running analysis works through: its parts (on disk or in memory), the shared
scopes, progress reports and the cancel check."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from .progress import Progress
from .store import PartStore


class JobCancelled(RuntimeError):
    """The job was stopped on request; every part finished so far is stored."""


class MemoryParts:
    """A `PartStore` held in memory: what a direct (unpersisted) run of an analysis uses."""

    def __init__(self) -> None:
        self._json: dict[str, Any] = {}
        self._arrays: dict[str, dict[str, np.ndarray]] = {}

    def has(self, name: str) -> bool:
        return name in self._json or name in self._arrays

    def get_json(self, name: str) -> Any | None:
        return self._json.get(name)

    def put_json(self, name: str, value: Any) -> None:
        self._json[name] = value

    def get_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        return self._arrays.get(name)

    def put_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        self._arrays[name] = dict(arrays)

    def json_records(self, prefix: str = "") -> list[Any]:
        return [v for k, v in sorted(self._json.items()) if k.startswith(prefix)]

    def count(self) -> int:
        return len(self._json) + len(self._arrays)


class JobContext:
    """What a running analysis uses: its own parts, shared scopes, progress and cancel.

    `progress(done, total, label=...)` reports units done; `reused(units)` says units
    that were found in the store (they count as done, but not towards the rate).
    `check()` raises `JobCancelled` once the job was asked to stop; progress calls
    check too, so a cancel takes effect at the next reported step."""

    def __init__(
        self,
        parts: PartStore | MemoryParts,
        shared: Callable[[str], PartStore | MemoryParts],
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_progress: Callable[[Progress], None] = lambda p: None,
    ) -> None:
        self.parts = parts
        self._shared = shared
        self.should_stop = should_stop
        self._on_progress = on_progress
        self._progress = Progress()
        self._computing_since: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def detached(cls, on_progress: Callable[[Progress], None] = lambda p: None) -> "JobContext":
        """A context whose parts live in memory only: for calling an analysis directly."""
        scopes: dict[str, MemoryParts] = {}
        return cls(MemoryParts(), lambda scope: scopes.setdefault(scope, MemoryParts()), on_progress=on_progress)

    def shared(self, scope: str) -> PartStore | MemoryParts:
        return self._shared(scope)

    @property
    def current(self) -> Progress:
        return self._progress

    def check(self) -> None:
        if self.should_stop():
            raise JobCancelled("stopped on request; finished parts are stored")

    def plan(self, total: float, unit: str) -> None:
        """Set the total amount of work (in `unit`s) before starting it."""
        with self._lock:
            self._progress = Progress(self._progress.done, float(total), unit, self._progress.label,
                                      self._progress.computed, self._progress.computing_seconds)
        self._on_progress(self._progress)

    def working_on(self, label: str) -> None:
        """Say what is being computed now (shown before the work, not after it)."""
        with self._lock:
            p = self._progress
            self._progress = Progress(p.done, p.total, p.unit, label, p.computed, p.computing_seconds)
        self._on_progress(self._progress)
        self.check()

    def advance(self, units: float, *, computed: bool = True) -> None:
        """`units` more are done; `computed=False` for units found in the store."""
        now = time.perf_counter()
        with self._lock:
            p = self._progress
            seconds = p.computing_seconds
            computed_units = p.computed
            if computed:
                if self._computing_since is not None:
                    seconds += now - self._computing_since
                computed_units += units
            self._computing_since = now
            self._progress = Progress(p.done + units, p.total, p.unit, p.label, computed_units, seconds)
        self._on_progress(self._progress)
        self.check()

    def reused(self, units: float) -> None:
        self.advance(units, computed=False)

    def start_clock(self) -> None:
        """Start timing computed work now (call right before the first computed unit)."""
        with self._lock:
            self._computing_since = time.perf_counter()
