"""Files that several threads and processes write at once, safely.

- `atomic_write`: write a temporary file in the same folder, fsync-free rename over the
  target: a reader sees the old file or the new one, never half of one, and a killed
  writer leaves at most a stray temporary file (named `.tmp-*`, ignored by readers).
- `file_lock`: an exclusive lock file (`filelock`, an advisory `flock` on POSIX) across
  processes and threads, whose wait can be cancelled. Used where a
  read-modify-write must not interleave, and to let one process run a job while
  another waits for its result.

Why not a database: results are a few large arrays and small JSON records per job;
one file per record needs no read-modify-write at all, so concurrent writers of
different records cannot lose each other's entries, and a folder is easy to inspect,
copy and delete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from filelock import FileLock, Timeout

TMP_PREFIX = ".tmp-"
STRAY_SECONDS = 600.0  # a temporary file this old is a killed writer's: no write takes this long


def atomic_write(path: Path, data: bytes) -> int:
    """Write `data` to `path` atomically (temporary file in the same folder, then rename);
    returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def write_json(path: Path, value: Any) -> int:
    return atomic_write(path, json.dumps(value, indent=1, sort_keys=True, allow_nan=True).encode("utf-8"))


def read_json(path: Path) -> Any | None:
    """The JSON value in `path`, or None when it is missing or unreadable (a record
    from an older, incompatible version counts as missing and is recomputed)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> int:
    """Named arrays as one uncompressed `.npz` (no pickles: object arrays are refused)."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write(path, buffer.getvalue())


def read_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays in an `.npz` written by `write_arrays`, or None when missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError):
        return None


@contextlib.contextmanager
def file_lock(path: Path, *, should_stop: Callable[[], bool] | None = None, poll: float = 0.1) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed) for the block (`filelock`).

    Blocks until the lock is free; with `should_stop`, raises `LockWaitCancelled` as soon
    as `should_stop()` is true while waiting (checked every `poll` seconds; `poll=0`
    with a `should_stop` that is true at once tries only once). A lock held by another
    `file_lock` in the same thread counts as busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=-1, poll_interval=max(poll, 0.001), cancel_check=should_stop)
    except Timeout:
        raise LockWaitCancelled(f"stopped while waiting for {path.name}") from None
    except RuntimeError as error:  # filelock refuses a same-thread wait that could never end
        if should_stop is None:
            raise
        raise LockWaitCancelled(f"{path.name} is held by this thread") from error
    try:
        yield
    finally:
        lock.release()


def is_locked(path: Path) -> bool:
    """Whether another holder has the lock on `path` right now (a snapshot)."""
    if not path.exists():
        return False
    lock = FileLock(path)
    try:
        lock.acquire(blocking=False)
    except (Timeout, RuntimeError):  # RuntimeError: held by another FileLock in this thread
        return True
    lock.release()
    return False


class LockWaitCancelled(RuntimeError):
    """Waiting for a lock was given up because the waiter was cancelled."""


def clean_stray_temporaries(root: Path, older_than: float = STRAY_SECONDS, *, recursive: bool = True) -> int:
    """Remove `.tmp-*` files (what a killed `atomic_write` leaves) under `root` older than
    `older_than` seconds, so one still being written by another process is left alone.
    Returns how many were removed; unreadable folders are skipped."""
    cutoff = time.time() - older_than
    removed = 0
    for path in (root.rglob(TMP_PREFIX + "*") if recursive else root.glob(TMP_PREFIX + "*")):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed
