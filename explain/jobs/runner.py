"""One job runner for every analysis: background threads, progress with rate and ETA,
cancel, deduplication, and results persisted in a `JobStore`.

A job runs an analysis (see `explain.analyses.base.Analysis`): its `run(inputs, ctx)`
generator yields partial results and, last, the frozen result. The job's key is a
hash of the analysis's settings, so:
- the same analysis asked for twice runs once (in this process: the running job is
  returned; across processes: the second waits on the job's file lock, then finds the
  parts already stored and only assembles them);
- a page switch, a browser reload or an app restart finds the finished result on disk
  (`find`) and rebuilds it from its parts without recomputing;
- a job killed mid-run resumes with its finished parts reused.

Jobs run on two small thread pools: "interactive" (maps, metrics: seconds to minutes)
and "long" (ROAR retraining, batch evaluation: minutes to hours), so a long job never
holds up the gallery. Each pool's size bounds how many of its jobs run at once, and a
pool accepts only a few times that many active jobs (`JobLimitError` beyond), so no
visitor can queue unbounded work.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from ..storage import LockWaitCancelled, file_lock, is_locked
from .store import JobStore, PartStore

log = logging.getLogger(__name__)

QUEUED, WAITING, RUNNING, DONE, FAILED, CANCELLED = "queued", "waiting", "running", "done", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, WAITING, RUNNING)
POOL_SIZES = {"interactive": 2, "long": 2}
POOL_ENV = {"interactive": "EXPLAIN_INTERACTIVE_JOBS", "long": "EXPLAIN_LONG_JOBS"}
QUEUE_FACTOR = {"interactive": 8, "long": 2}  # active jobs a pool accepts: running + waiting, per worker
KEPT_IN_MEMORY = 64  # finished jobs kept in memory per runner (older ones reload from disk)


class JobLimitError(RuntimeError):
    """Too many jobs of this kind are running or waiting in this process; try again later."""


class JobCancelled(RuntimeError):
    """The job was stopped on request; every part finished so far is stored."""


class Analysis(Protocol):
    """What the runner needs of an analysis (implemented by `explain.analyses.base.Analysis`)."""

    @property
    def kind(self) -> str: ...

    @property
    def pool(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def title(self) -> str: ...

    def settings_record(self) -> dict[str, Any]: ...

    def run(self, inputs: Any, ctx: "JobContext") -> Iterator[Any]: ...

    def load(self, ctx: "JobContext") -> Any | None: ...


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


class MemoryParts:
    """A `PartStore` held in memory: what a direct (unpersisted) run of an analysis uses."""

    def __init__(self) -> None:
        self._json: dict[str, Any] = {}
        self._arrays: dict[str, dict] = {}

    def has(self, name: str) -> bool:
        return name in self._json or name in self._arrays

    def get_json(self, name: str) -> Any | None:
        return self._json.get(name)

    def put_json(self, name: str, value: Any) -> None:
        self._json[name] = value

    def get_arrays(self, name: str) -> dict | None:
        return self._arrays.get(name)

    def put_arrays(self, name: str, arrays: dict) -> None:
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


class Job:
    """One analysis run in the background; every property is safe to read from any thread."""

    def __init__(self, analysis: Analysis, runner: "JobRunner") -> None:
        self.analysis = analysis
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
        self._runner = runner

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


@dataclass
class _Pools:
    sizes: dict[str, int]
    executors: dict[str, ThreadPoolExecutor] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def executor(self, pool: str) -> ThreadPoolExecutor:
        with self.lock:
            if pool not in self.executors:
                self.executors[pool] = ThreadPoolExecutor(
                    max_workers=self.sizes.get(pool, 1), thread_name_prefix=f"job-{pool}"
                )
            return self.executors[pool]


def pool_sizes() -> dict[str, int]:
    """Workers per pool: the defaults, or `EXPLAIN_INTERACTIVE_JOBS` / `EXPLAIN_LONG_JOBS`."""
    sizes = dict(POOL_SIZES)
    for pool, env in POOL_ENV.items():
        value = os.environ.get(env, "").strip()
        if value.isdigit() and int(value) > 0:
            sizes[pool] = int(value)
    return sizes


class JobRunner:
    """Runs analyses as jobs and finds their results again (see the module docstring)."""

    def __init__(self, store: JobStore | None = None, pools: dict[str, int] | None = None) -> None:
        self.store = store or JobStore()
        self._pools = _Pools(pools or pool_sizes())
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- public
    def submit(self, analysis: Analysis, inputs: Any) -> Job:
        """The job for `analysis`: the one already running or finished in this process, a
        finished one rebuilt from disk, or a new job started in the background."""
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
            limit = self._pools.sizes.get(analysis.pool, 1) * QUEUE_FACTOR.get(analysis.pool, 4)
            active = sum(1 for j in self._jobs.values() if j.active and j.analysis.pool == analysis.pool)
            if active >= limit:
                raise JobLimitError(f"{active} {analysis.pool} jobs are already running or waiting on this server "
                                    f"(at most {limit}); try again when one has finished.")
            job = Job(analysis, self)
            self._remember(job)
        self._pools.executor(analysis.pool).submit(self._execute, job, inputs)
        return job

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
        result = analysis.load(self._context(analysis.key))
        if result is None:  # parts missing (deleted, older version): not finished after all
            return None
        job = Job(analysis, self)
        job._set(state=DONE, result=result, progress=_progress_of(record))
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
        """Whether another process holds this job's lock now."""
        return is_locked(self.store.lock_path(key))

    # ---------------------------------------------------------------- internals
    def _remember(self, job: Job) -> None:
        self._jobs[job.key] = job
        self._jobs.move_to_end(job.key)
        finished = [k for k, j in self._jobs.items() if not j.active]
        while len(self._jobs) > KEPT_IN_MEMORY and finished:
            self._jobs.pop(finished.pop(0), None)

    def _context(self, key: str, job: Job | None = None) -> JobContext:
        if job is None:
            return JobContext(self.store.parts(key), self.store.shared)

        def on_progress(progress: Progress) -> None:
            job._set(progress=progress)

        return JobContext(
            self.store.parts(key), self.store.shared, should_stop=job.cancel_event.is_set, on_progress=on_progress
        )

    def _record(self, job: Job, **extra: Any) -> dict[str, Any]:
        return {
            "key": job.key,
            "kind": job.kind,
            "title": job.title,
            "settings": job.analysis.settings_record(),
            "state": job.state,
            "created": job.created,
            "progress": job.progress.to_record(),
            "error": job.error,
            **extra,
        }

    def _execute(self, job: Job, inputs: Any) -> None:
        analysis = job.analysis
        started = time.time()
        try:
            if self.running_elsewhere(job.key):
                job._set(state=WAITING, progress=Progress(label="waiting for the same job in another process"))
            with file_lock(self.store.lock_path(job.key), should_stop=job.cancel_event.is_set):
                job._set(state=RUNNING)
                self.store.write_record(job.key, self._record(job, started=started))
                ctx = self._context(job.key, job)
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
            job.finished_event.set()

    def _safe_record(self, job: Job, started: float) -> None:
        try:
            self.store.write_record(job.key, self._record(job, started=started, finished=time.time()))
        except OSError:
            log.exception("could not write the record of job %s", job.key)


def _progress_of(record: dict[str, Any]) -> Progress:
    p = record.get("progress") or {}
    try:
        return Progress(float(p.get("done", 0)), float(p.get("total", 0)), str(p.get("unit", "steps")), "",
                        float(p.get("computed", 0)), float(p.get("computing_seconds", 0)))
    except (TypeError, ValueError):
        return Progress()


_DEFAULT: JobRunner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> JobRunner:
    """The process-wide runner (pages, the CLI and batch runs share it)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT.store.root != JobStore().root:  # EXPLAIN_CACHE_DIR changed (tests)
            _DEFAULT = JobRunner()
        return _DEFAULT
