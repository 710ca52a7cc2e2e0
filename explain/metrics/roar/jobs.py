"""ROAR runs in background threads, one per settings in the process, at most
`MAX_RUNNING_ROAR_JOBS` at a time."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping

import torch

from ...data.training import LabelledImages
from .results import RoarSummary
from .run import RoarCancelled, RoarStatus, run_roar
from .settings import Ranker, RoarSettings, job_key
from .store import RoarStore

log = logging.getLogger(__name__)


class RoarJob:
    """One ROAR run in a daemon thread; `status` is safe to read from any thread."""

    def __init__(self, key: str, target: Callable[[RoarStatus], RoarSummary]) -> None:
        self.key = key
        self.status = RoarStatus()
        self.started = time.time()
        self._target = target
        self._thread = threading.Thread(target=self._run, name=f"roar-{key}", daemon=True)

    def _run(self) -> None:
        try:
            self._target(self.status)
        except RoarCancelled:
            pass  # status says "cancelled"
        except Exception:
            log.exception("ROAR job %s failed", self.key)  # status carries the message to the page
        finally:
            self._target = None  # let the dataset go once the job has ended

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def cancel(self) -> None:
        self.status.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


# Each job retrains networks on the server's cores for minutes: more at once only slow
# every one of them (and every page) down.
MAX_RUNNING_ROAR_JOBS = 2


class RoarJobLimitError(RuntimeError):
    """As many ROAR jobs as the process allows are running; the message says so."""


_JOBS: dict[str, RoarJob] = {}
_JOBS_LOCK = threading.Lock()


def start_roar_job(
    dataset: LabelledImages, settings: RoarSettings, *, store: RoarStore | None = None,
    rankers: Mapping[str, Ranker] | None = None, device: torch.device | str = "cpu",
) -> RoarJob:
    """Start `run_roar` in the background, or return the job already running for the
    same dataset and settings (a second click does not start a second job). Raises
    `RoarJobLimitError` when `MAX_RUNNING_ROAR_JOBS` other jobs are running."""
    key = job_key(dataset, settings)
    with _JOBS_LOCK:
        job = _JOBS.get(key)
        if job is not None and job.running:
            return job
        running = sum(1 for other in _JOBS.values() if other.running)
        if running >= MAX_RUNNING_ROAR_JOBS:
            raise RoarJobLimitError(
                f"{running} ROAR runs are already going on this server (at most {MAX_RUNNING_ROAR_JOBS} at a time); "
                f"wait for one to finish, then start again."
            )
        job = RoarJob(key, lambda status: run_roar(dataset, settings, store=store, status=status, rankers=rankers, device=device))
        _JOBS[key] = job
        job.start()
        return job


def get_roar_job(key: str) -> RoarJob | None:
    with _JOBS_LOCK:
        return _JOBS.get(key)
