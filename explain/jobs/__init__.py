"""Jobs: every analysis runs in the background with progress, cancel and results that
persist under `$EXPLAIN_CACHE_DIR`: `runner` (submission, admission, the run), `pools`
(threads and queue limits), `job`, `context` (what a running analysis sees), `progress`
and `store` (the files)."""

from .budget import Budget, BudgetExceeded, Visitor
from .context import JobCancelled, JobContext, MemoryParts
from .job import ACTIVE_STATES, CANCELLED, DONE, FAILED, QUEUED, RUNNING, WAITING, Job
from .pools import JobLimitError
from .progress import Progress, format_seconds
from .runner import JobRunner, default_runner
from .store import JobStore, PartStore

__all__ = [
    "ACTIVE_STATES", "CANCELLED", "DONE", "FAILED", "QUEUED", "RUNNING", "WAITING", "Job", "JobCancelled",
    "JobLimitError", "JobContext", "JobRunner", "MemoryParts", "Progress", "default_runner", "format_seconds",
    "JobStore", "PartStore", "Budget", "BudgetExceeded", "Visitor",
]
