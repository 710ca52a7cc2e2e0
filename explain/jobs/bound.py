"""The cache folder's size bound: what `$EXPLAIN_CACHE_DIR` holds, by kind, and eviction
of the oldest entries once it outgrows `EXPLAIN_CACHE_MAX_GB`.

Entries are the units that can go without breaking anything: a job's folder (record and
parts), one shared part (a map, a ROAR retraining's entry), an evaluation's results
folder, one trained model file. Oldest first means least recently written (a folder's
age is its newest file's). Never evicted: the folders of running jobs and evaluations
(their lock is held) and any shared file or model written since the oldest running job
started (its parts may live there). A stored result that lost a part is simply
recomputed: analyses check that every part is there before they rebuild a result.
"""

from __future__ import annotations

import os
from stat import S_ISDIR as stat_is_dir_mode
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..storage import TMP_PREFIX, is_locked, read_json

MAX_GB_ENV = "EXPLAIN_CACHE_MAX_GB"
DEFAULT_MAX_GB = 20.0
LOW_WATER = 0.9  # evict down to this fraction of the bound, so the next writes do not evict again at once
STALE_TMP_SECONDS = 3600  # a temporary file this old belongs to a writer that was killed


def max_bytes() -> int | None:
    """The bound in bytes: `EXPLAIN_CACHE_MAX_GB` (GiB, fractional allowed; 0 = unbounded),
    else `DEFAULT_MAX_GB`. A value that is not a number is an operator error."""
    text = os.environ.get(MAX_GB_ENV, "").strip()
    if not text:
        return int(DEFAULT_MAX_GB * 2**30)
    try:
        gb = float(text)
    except ValueError:
        raise ValueError(f"{MAX_GB_ENV}={text!r} is not a number of GB") from None
    return None if gb <= 0 else int(gb * 2**30)


@dataclass(frozen=True)
class Entry:
    """One evictable unit of the cache."""

    path: Path
    kind: str
    size: int
    mtime: float
    busy: bool


def _tree(path: Path) -> tuple[int, float] | None:
    """Total bytes and newest modification time of a file or folder; None when it is gone
    (another process renamed its temporary file or evicted it while this one scanned)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    if not stat_is_dir_mode(stat.st_mode):
        return stat.st_size, stat.st_mtime
    size, newest = 0, stat.st_mtime
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                stat = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            size += stat.st_size
            newest = max(newest, stat.st_mtime)
    return size, newest


def _running_since(root: Path, busy_jobs: Iterable[Path]) -> float:
    """When the oldest running job started (inf when none runs)."""
    started = [float("inf")]
    for folder in busy_jobs:
        record = read_json(folder / "job.json")
        when = record.get("started") if isinstance(record, dict) else None
        if isinstance(when, (int, float)):
            started.append(float(when))
        elif (lock := _tree(folder / "lock")) is not None:
            started.append(lock[1])
    return min(started)


def scan(root: Path) -> list[Entry]:
    """Every entry of the cache under `root`, with its size, age and whether it is in use."""
    entries: list[Entry] = []
    jobs = sorted((root / "jobs").iterdir()) if (root / "jobs").is_dir() else []
    busy_jobs = [folder for folder in jobs if is_locked(folder / "lock")]
    since = _running_since(root, busy_jobs)
    for folder in jobs:
        if (tree := _tree(folder)) is not None:
            entries.append(Entry(folder, "jobs", *tree, folder in busy_jobs))
    for top in sorted(root.iterdir()) if root.is_dir() else []:
        if top.name == "jobs":
            continue
        if top.name == "shared" and top.is_dir():
            for scope in sorted(top.iterdir()):
                kind = "maps" if scope.name == "maps" else "shared"
                for path in sorted(scope.iterdir()) if scope.is_dir() else []:
                    if path.name.startswith(".tmp-"):
                        continue  # another writer's file in flight: never evicted (stale ones go at start-up)
                    if (tree := _tree(path)) is not None:
                        entries.append(Entry(path, kind, *tree, tree[1] >= since))
        elif top.name == "evaluations" and top.is_dir():
            for folder in sorted(top.iterdir()):
                if (tree := _tree(folder)) is not None:
                    entries.append(Entry(folder, "evaluations", *tree, is_locked(folder / ".lock")))
        elif top.is_dir():
            for path in sorted(top.iterdir()):
                if (tree := _tree(path)) is not None:
                    entries.append(Entry(path, top.name, *tree, tree[1] >= since))
        elif (tree := _tree(top)) is not None:
            entries.append(Entry(top, "other", *tree, False))
    return entries


def usage(entries: Iterable[Entry]) -> dict[str, tuple[int, int]]:
    """(entries, bytes) per kind."""
    found: dict[str, tuple[int, int]] = {}
    for entry in entries:
        count, size = found.get(entry.kind, (0, 0))
        found[entry.kind] = (count + 1, size + entry.size)
    return found


def remove(entry: Entry) -> None:
    if entry.path.is_dir():
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        entry.path.unlink(missing_ok=True)


def evict(root: Path, limit: int, target: int | None = None) -> tuple[list[Entry], int]:
    """Remove the oldest idle entries until the cache holds at most `target` bytes
    (default: `LOW_WATER` of `limit`) whenever it holds more than `limit`. Returns what
    was removed and the bytes left."""
    entries = scan(root)
    total = sum(e.size for e in entries)
    if total <= limit:
        return [], total
    target = int(limit * LOW_WATER) if target is None else target
    removed = []
    for entry in sorted((e for e in entries if not e.busy), key=lambda e: e.mtime):
        if total <= target:
            break
        remove(entry)
        removed.append(entry)
        total -= entry.size
    return removed, total


def stray_temporaries(root: Path, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
    """Temporary files left by killed writers (`storage.atomic_write`)."""
    now = time.time()
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if name.startswith(TMP_PREFIX) and now - path.stat().st_mtime > older_than:
                found.append(path)
    return found


class CacheBound:
    """Keeps `root` under `max_bytes()` while parts are written: counts the bytes written
    since the last scan and evicts as soon as the estimate passes the bound."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._estimate: int | None = None
        self._lock = threading.Lock()

    def wrote(self, size: int) -> None:
        """`size` more bytes were just written under the root."""
        limit = max_bytes()
        if limit is None:
            return
        with self._lock:
            if self._estimate is None:
                self._estimate = sum(e.size for e in scan(self.root))
            else:
                self._estimate += size
            if self._estimate > limit:
                _, self._estimate = evict(self.root, limit)

    def check(self) -> None:
        """Rescan and evict if needed (after work that wrote outside the part stores)."""
        with self._lock:
            self._estimate = None
        self.wrote(0)
