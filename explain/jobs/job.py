"""One job: an analysis running in the background, its state, progress and result."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .progress import Progress

if TYPE_CHECKING:
    from ..analyses.base import Analysis

QUEUED, WAITING, RUNNING, DONE, FAILED, CANCELLED = "queued", "waiting", "running", "done", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, WAITING, RUNNING)


class Job:
    """One analysis run in the background; every property is safe to read from any thread."""

    def __init__(self, analysis: Analysis, owner: str | None = None, planned_passes: float = 0.0) -> None:
        self.analysis = analysis
        self.owner = owner  # the session that started it (None: the command line, a script)
        self.planned_passes = planned_passes  # counted against its owner's budget while active
        self.key = analysis.key
        self.kind = analysis.kind
        self.title = analysis.title
        self.created = time.time()
        self.cancel_event = threading.Event()
        self.finished_event = threading.Event()
        self._lock = threading.Lock()
        self._state = QUEUED
        self._progress = Progress()
        self._partial: Any = None
        self._result: Any = None
        self._error = ""

    # ---------------------------------------------------------------- reading
    @property
    def state(self) -> str:
        return self._state

    @property
    def progress(self) -> Progress:
        return self._progress

    @property
    def partial(self) -> Any:
        """The latest partial result yielded by the analysis (None before the first)."""
        return self._partial

    @property
    def result(self) -> Any:
        return self._result

    @property
    def error(self) -> str:
        return self._error

    @property
    def active(self) -> bool:
        return self._state in ACTIVE_STATES

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job has ended; True when it has."""
        return self.finished_event.wait(timeout)

    def cancel(self) -> None:
        self.cancel_event.set()

    # ---------------------------------------------------------------- writing (runner only)
    def _set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, f"_{name}", value)
