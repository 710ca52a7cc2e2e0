"""The job pools and their queues: how many jobs of each pool run at once, and how many
may be running or waiting before a new one is refused.

Two small thread pools: "interactive" (maps, metrics: seconds to minutes) and "long"
(ROAR retraining, batch evaluation: minutes to hours), so a long job never holds up the
gallery. A pool accepts `QUEUE_FACTOR` times its workers in active jobs
(`JobLimitError` beyond), so no visitor can queue unbounded work.

Job threads may run at a lower OS priority (Linux's per-thread nice,
`EXPLAIN_JOB_NICENESS`, 1 to 19; the torch threads a job starts inherit it). Off by
default (`JOB_NICENESS` 0): measured on an oversubscribed host, a niced job thread that
holds the GIL or the model's lock is descheduled and everything waiting for it waits
longer (priority inversion), so it helps only on a host whose cores the server owns.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

POOL_SIZES = {"interactive": 2, "long": 2}
POOL_ENV = {"interactive": "EXPLAIN_INTERACTIVE_JOBS", "long": "EXPLAIN_LONG_JOBS"}
QUEUE_FACTOR = {"interactive": 8, "long": 2}  # active jobs a pool accepts: running + waiting, per worker


class JobLimitError(RuntimeError):
    """Too many jobs of this kind are running or waiting in this process; try again later."""


def pool_sizes() -> dict[str, int]:
    """Workers per pool: the defaults, or `EXPLAIN_INTERACTIVE_JOBS` / `EXPLAIN_LONG_JOBS`."""
    sizes = dict(POOL_SIZES)
    for pool, env in POOL_ENV.items():
        value = os.environ.get(env, "").strip()
        if value.isdigit() and int(value) > 0:
            sizes[pool] = int(value)
    return sizes


JOB_NICENESS = 0  # nice value of job threads by default: off (see the module docstring)
NICENESS_ENV = "EXPLAIN_JOB_NICENESS"


def job_niceness() -> int:
    """The nice value for job threads: `EXPLAIN_JOB_NICENESS` (0 to 19; 0 turns it off), else `JOB_NICENESS`."""
    value = os.environ.get(NICENESS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) <= 19 else JOB_NICENESS


def lower_priority() -> None:
    """Give the calling thread (and the threads it starts later) the jobs' nice value,
    unless it is lower already; where the OS has no per-thread nice, nothing changes."""
    niceness = job_niceness()
    try:
        thread = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, thread) < niceness:
            os.setpriority(os.PRIO_PROCESS, thread, niceness)
    except (AttributeError, OSError):  # no per-thread priorities here (not Linux), or not allowed
        pass


class Pools:
    """One thread pool per pool name, started on first use."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = dict(sizes)
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def queue_limit(self, pool: str) -> int:
        """How many jobs of `pool` may be active (running or waiting) at once."""
        return self.sizes.get(pool, 1) * QUEUE_FACTOR.get(pool, 4)

    def check_room(self, pool: str, active: int) -> None:
        """Raise `JobLimitError` when `active` jobs of `pool` leave no room for one more."""
        limit = self.queue_limit(pool)
        if active >= limit:
            raise JobLimitError(f"{active} {pool} jobs are already running or waiting on this server "
                                f"(at most {limit}); try again when one has finished.")

    def start(self, pool: str, work: Callable[[], None]) -> None:
        """Run `work` on `pool`'s threads."""
        with self._lock:
            if pool not in self._executors:
                self._executors[pool] = ThreadPoolExecutor(max_workers=self.sizes.get(pool, 1),
                                                           thread_name_prefix=f"job-{pool}",
                                                           initializer=lower_priority)
            executor = self._executors[pool]
        executor.submit(work)
