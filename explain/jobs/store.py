"""Where jobs keep what they compute, under `$EXPLAIN_CACHE_DIR` (default `data/`).

    <root>/jobs/<job key>/job.json        the job's record: kind, settings, state, progress, timings
    <root>/jobs/<job key>/lock             held (flock) by the process running the job
    <root>/jobs/<job key>/parts/...        the job's own results, one file per part
    <root>/shared/<scope>/...              parts shared by many jobs: attribution maps,
                                           ROAR retrainings of one experiment, ...

Every part is its own file written atomically (`explain.storage`), so a killed job
leaves only whole parts (a rerun reuses them) and two processes writing parts at once
never lose each other's. Parts hold JSON or named NumPy arrays; nothing is pickled.
`STORE_FORMAT` is part of every job key and stored map name: a change of layout makes
new names, and the old files age out of the bounded cache (`explain.jobs.bound`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import cache_dir
from .bound import CacheBound
from ..storage import TMP_PREFIX, read_arrays, read_json, write_arrays, write_json

STORE_FORMAT = 2  # bump when stored parts change shape or naming: every key changes, nothing old is misread

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.=+-]{1,100}$")


def file_stem(name: str) -> str:
    """A part's file name: the name itself when it is short and plain, else a digest of it."""
    if _SAFE_NAME.match(name) and not name.startswith("."):
        return name
    return "h-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:32]


class PartStore:
    """The parts of one scope (a job, or a shared scope) in one folder; `on_write(bytes)`
    hears of every part written (the cache bound counts them)."""

    def __init__(self, root: Path, on_write: Callable[[int], None] | None = None) -> None:
        self.root = Path(root)
        self._on_write = on_write

    def _wrote(self, size: int) -> None:
        if self._on_write is not None:
            self._on_write(size)

    def _path(self, name: str, suffix: str) -> Path:
        return self.root / (file_stem(name) + suffix)

    def has(self, name: str) -> bool:
        return self._path(name, ".json").is_file() or self._path(name, ".npz").is_file()

    def get_json(self, name: str) -> Any | None:
        return read_json(self._path(name, ".json"))

    def put_json(self, name: str, value: Any) -> None:
        self._wrote(write_json(self._path(name, ".json"), value))

    def get_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        return read_arrays(self._path(name, ".npz"))

    def put_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        self._wrote(write_arrays(self._path(name, ".npz"), arrays))

    def json_records(self, prefix: str = "") -> list[Any]:
        """Every JSON part whose file name starts with `prefix` (plain names only), in name order."""
        if not self.root.is_dir():
            return []
        records = []
        for path in sorted(self.root.glob(f"{prefix}*.json")):
            if path.name.startswith(TMP_PREFIX):
                continue
            value = read_json(path)
            if value is not None:
                records.append(value)
        return records

    def count(self) -> int:
        if not self.root.is_dir():
            return 0
        parts = (p for p in self.root.iterdir() if not p.name.startswith(TMP_PREFIX))
        return sum(1 for p in parts if p.suffix in (".json", ".npz"))


class JobStore:
    """Job records and parts under `root` (default `cache_dir()`), kept under the cache's
    size bound (`bound`: oldest idle entries go first, see `explain.jobs.bound`)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()
        self.bound = CacheBound(self.root)

    def job_dir(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{8,64}", key):
            raise ValueError(f"not a job key: {key!r}")
        return self.root / "jobs" / key

    def parts(self, key: str) -> PartStore:
        return PartStore(self.job_dir(key) / "parts", self.bound.wrote)

    def shared(self, scope: str) -> PartStore:
        """Parts shared between jobs, e.g. `shared("maps")` or `shared("roar-<experiment>")`."""
        return PartStore(self.root / "shared" / file_stem(scope), self.bound.wrote)

    def lock_path(self, key: str) -> Path:
        return self.job_dir(key) / "lock"

    def record(self, key: str) -> dict[str, Any] | None:
        """The job's record when it is sound (see `valid_record`); a damaged one counts as none."""
        return valid_record(read_json(self.job_dir(key) / "job.json"))

    def write_record(self, key: str, record: dict[str, Any]) -> None:
        """Write a job's record (stamped with `STORE_FORMAT`)."""
        self.bound.wrote(write_json(self.job_dir(key) / "job.json", {**record, "format": STORE_FORMAT}))

    def records(self) -> list[dict[str, Any]]:
        """Every job record on disk, newest first."""
        folder = self.root / "jobs"
        if not folder.is_dir():
            return []
        found = [r for p in folder.iterdir() if (r := valid_record(read_json(p / "job.json"))) is not None]
        return sorted(found, key=lambda r: r.get("created", 0), reverse=True)

    def delete(self, key: str) -> None:
        shutil.rmtree(self.job_dir(key), ignore_errors=True)


def valid_record(value: Any) -> dict[str, Any] | None:
    """A job record read from disk when its fields have their types (`kind`, `state` text;
    `created` a number; `settings` an object), else None with a log line: a hand-edited
    or damaged record is skipped, never half-used."""
    if value is None:
        return None
    sound = (isinstance(value, dict) and isinstance(value.get("kind"), str) and isinstance(value.get("state"), str)
             and isinstance(value.get("created", 0), (int, float)) and not isinstance(value.get("created", 0), bool)
             and isinstance(value.get("settings", {}), dict))
    if not sound:
        log.warning("a damaged job record was skipped (%s)", type(value).__name__)
        return None
    return value
