"""Jobs: every analysis runs in the background with progress, cancel and results that
persist under `$EXPLAIN_CACHE_DIR` (see `runner` and `store`)."""

from .runner import (
    ACTIVE_STATES,
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    WAITING,
    Job,
    JobCancelled,
    JobContext,
    JobLimitError,
    JobRunner,
    MemoryParts,
    Progress,
    default_runner,
    format_seconds,
)
from .store import JobStore, PartStore

__all__ = [
    "ACTIVE_STATES",
    "CANCELLED",
    "DONE",
    "FAILED",
    "QUEUED",
    "RUNNING",
    "WAITING",
    "Job",
    "JobCancelled",
    "JobLimitError",
    "JobContext",
    "JobRunner",
    "MemoryParts",
    "Progress",
    "default_runner",
    "format_seconds",
    "JobStore",
    "PartStore",
]
