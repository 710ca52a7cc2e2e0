"""One job runner for every analysis: submission and admission, deduplication, the run
itself and finding finished results again.

A job runs an analysis (`explain.analyses.base.Analysis`): its `run(inputs, ctx)`
generator yields partial results and, last, the frozen result. The job's key is a hash
of the analysis's settings, so:
- the same analysis asked for twice runs once (in this process: the running job is
  returned; across processes: the second waits on the job's file lock, then finds the
  parts already stored and only assembles them);
- a page switch, a browser reload or an app restart finds the finished result on disk
  (`find`) and rebuilds it from its parts without recomputing;
- a job killed mid-run resumes with its finished parts reused.

The pools and their queue limits live in `pools`, progress in `progress`, what a running
analysis sees in `context`, the job object in `job`, and the files in `store`.
Every new job passes through `JobRunner.admit` first: the one place that decides
whether a submission may start (queue room today; per-visitor budgets may join it).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..storage import LockWaitCancelled, file_lock, is_locked
from . import budget
from .budget import Visitor
from .context import JobCancelled, JobContext, MemoryParts
from .job import ACTIVE_STATES, CANCELLED, DONE, FAILED, QUEUED, RUNNING, WAITING, Job
from .pools import JobLimitError, Pools, pool_sizes
from .progress import Progress, format_seconds, progress_from_record
from .store import JobStore

if TYPE_CHECKING:
    from ..analyses.base import Analysis

log = logging.getLogger(__name__)

KEPT_IN_MEMORY = 64  # finished jobs kept in memory per runner (older ones reload from disk)

__all__ = [
    "ACTIVE_STATES", "CANCELLED", "DONE", "FAILED", "QUEUED", "RUNNING", "WAITING", "Job", "JobCancelled",
    "JobContext", "JobLimitError", "JobRunner", "MemoryParts", "Progress", "default_runner", "format_seconds",
]


class JobRunner:
    """Runs analyses as jobs and finds their results again (see the module docstring)."""

    def __init__(self, store: JobStore | None = None, pools: dict[str, int] | None = None) -> None:
        self.store = store or JobStore()
        self._pools = Pools(pools or pool_sizes())
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- public
    def submit(self, analysis: Analysis, inputs: Any, owner: Visitor | None = None) -> Job:
        """The job for `analysis`: the one already running or finished in this process, a
        finished one rebuilt from disk, or a new job (admitted by `admit`) started in the
        background. `owner`: the visitor (session and budget) who asked; None (the command
        line, scripts) is not budgeted."""
        with self._lock:
            job = self._jobs.get(analysis.key)
            if job is not None and (job.active or job.state == DONE):
                self._jobs.move_to_end(analysis.key)
                return job
        finished = self.find(analysis)
        if finished is not None and finished.state == DONE:
            return finished
        with self._lock:
            job = self._jobs.get(analysis.key)
            if job is not None and job.active:
                return job
            planned = self.admit(analysis, owner)
            job = Job(analysis, owner.session if owner else None, planned)
            self._remember(job)
        self._pools.start(analysis.pool, lambda: self._execute(job, inputs))
        return job

    def admit(self, analysis: Analysis, owner: Visitor | None) -> float:
        """Decide whether a new job for `analysis` may start now: raise `JobLimitError` (or
        `BudgetExceeded`, the visitor's caps) when it may not; returns the passes it
        plans (counted against `owner` while it is active; 0 for no visitor). The single
        admission point; called with the runner's lock held, so what it counts cannot
        change under it."""
        active = [j for j in self._jobs.values() if j.active]
        self._pools.check_room(analysis.pool, sum(1 for j in active if j.analysis.pool == analysis.pool))
        if owner is None:
            return 0.0
        return budget.admit(analysis, owner, active, self._pools.queue_limit(analysis.pool))

    def find(self, analysis: Analysis) -> Job | None:
        """The job for `analysis` if it is known in this process or finished on disk;
        never starts anything. A finished result is rebuilt from its stored parts."""
        with self._lock:
            job = self._jobs.get(analysis.key)
        if job is not None:
            return job
        record = self.store.record(analysis.key)
        if record is None or record.get("state") != DONE:
            return None
        result = analysis.load(JobContext(self.store.parts(analysis.key), self.store.shared))
        if result is None:  # parts missing (deleted, older version): not finished after all
            return None
        job = Job(analysis)
        job._set(state=DONE, result=result, progress=progress_from_record(record))
        job.created = record.get("created", job.created)
        job.finished_event.set()
        with self._lock:
            self._remember(job)
        return job

    def get(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[Job]:
        """Jobs known to this process, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def reader(self) -> JobContext:
        """A context on the shared scopes (maps, ROAR retrainings...), for showing stored
        parts outside any job."""
        return JobContext(MemoryParts(), self.store.shared)

    def running_elsewhere(self, key: str) -> bool:
        """Whether another process (or thread) holds this job's lock now."""
        return is_locked(self.store.lock_path(key))

    # ---------------------------------------------------------------- internals
    def _remember(self, job: Job) -> None:
        self._jobs[job.key] = job
        self._jobs.move_to_end(job.key)
        finished = [k for k, j in self._jobs.items() if not j.active]
        while len(self._jobs) > KEPT_IN_MEMORY and finished:
            self._jobs.pop(finished.pop(0), None)

    def _record(self, job: Job, **extra: Any) -> dict[str, Any]:
        return {
            "key": job.key, "kind": job.kind, "title": job.title, "settings": job.analysis.settings_record(),
            "state": job.state, "created": job.created, "progress": job.progress.to_record(), "error": job.error,
            **extra,
        }

    def _execute(self, job: Job, inputs: Any) -> None:
        """Run `job` on a pool thread: wait for its lock, run the analysis, record the outcome."""
        analysis = job.analysis
        started = time.time()
        try:
            if self.running_elsewhere(job.key):
                job._set(state=WAITING, progress=Progress(label="waiting for the same job in another process"))
            with file_lock(self.store.lock_path(job.key), should_stop=job.cancel_event.is_set):
                job._set(state=RUNNING)
                self.store.write_record(job.key, self._record(job, started=started))
                ctx = JobContext(self.store.parts(job.key), self.store.shared, should_stop=job.cancel_event.is_set,
                                 on_progress=lambda progress: job._set(progress=progress))
                result = None
                for item in analysis.run(inputs, ctx):
                    job._set(partial=item)
                    result = item
                if result is None:
                    raise RuntimeError(f"{analysis.kind} produced no result")
                job._set(result=result, state=DONE)
                self.store.write_record(job.key, self._record(job, started=started, finished=time.time(),
                                                              seconds=round(time.time() - started, 3)))
        except (JobCancelled, LockWaitCancelled):
            job._set(state=CANCELLED, error="Stopped. Everything finished so far is stored; run it again to go on.")
            self._safe_record(job, started)
        except Exception as exc:  # an analysis may fail on a user's model or data; the page shows why
            log.error("job %s (%s) failed:\n%s", job.key, job.kind, traceback.format_exc())
            job._set(state=FAILED, error=f"{type(exc).__name__}: {exc}")
            self._safe_record(job, started)
        finally:
            if analysis.pool == "long":  # long jobs also write outside the part stores (models, results folders)
                self._keep_bound()
            job.finished_event.set()

    def _keep_bound(self) -> None:
        """Evict to the cache's bound after a job (never fails the job: the bound is a housekeeping)."""
        try:
            self.store.bound.check()
        except (OSError, ValueError):
            log.exception("could not keep the cache under its bound")

    def _safe_record(self, job: Job, started: float) -> None:
        try:
            self.store.write_record(job.key, self._record(job, started=started, finished=time.time()))
        except OSError:
            log.exception("could not write the record of job %s", job.key)


_RUNNERS: dict[str, JobRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def default_runner() -> JobRunner:
    """The process-wide runner of the configured cache folder (`EXPLAIN_CACHE_DIR`): pages,
    the CLI and batch runs share it."""
    root = str(JobStore().root)
    with _RUNNERS_LOCK:
        if root not in _RUNNERS:
            _RUNNERS[root] = JobRunner(JobStore(root))
        return _RUNNERS[root]
