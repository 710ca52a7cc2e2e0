"""ROAR result records (JSON) and pixel rankings (.npy) on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...config import cache_dir
from ...data.training import LabelledImages
from .results import RoarSummary, summarize
from .settings import MethodSpec, RoarSettings, experiment_key

log = logging.getLogger(__name__)

class RoarStore:
    """Result records (JSON) and pixel rankings (.npy) under `root/<experiment key>/`.
    Writes are atomic and merged under a per-experiment lock, so concurrent jobs of the
    same experiment (different methods) never lose each other's entries."""

    _locks: dict[str, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "roar"

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(str(self.root / key), threading.Lock())

    def record_path(self, key: str) -> Path:
        return self.root / key / "result.json"

    def load(self, key: str) -> dict[str, Any]:
        path = self.record_path(key)
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("ignoring unreadable ROAR result file %s", path)
            return {}

    def update(self, key: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read, apply `change`, write back atomically; returns the new record."""
        with self._lock(key):
            record = self.load(key)
            change(record)
            path = self.record_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
            os.replace(tmp, path)
            return record

    def _order_path(self, key: str, method: MethodSpec, split: str) -> Path:
        name = hashlib.sha1(method.ident.encode()).hexdigest()[:12]
        return self.root / key / "orders" / f"{name}-{split}.npy"

    def load_orders(self, key: str, method: MethodSpec) -> tuple[np.ndarray, np.ndarray] | None:
        paths = [self._order_path(key, method, s) for s in ("train", "test")]
        if not all(p.is_file() for p in paths):
            return None
        return tuple(np.load(p, allow_pickle=False) for p in paths)  # type: ignore[return-value]

    def save_orders(self, key: str, method: MethodSpec, train: np.ndarray, test: np.ndarray) -> None:
        for split, order in (("train", train), ("test", test)):
            path = self._order_path(key, method, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + f".{os.getpid()}.{threading.get_ident()}.tmp.npy")
            np.save(tmp, order, allow_pickle=False)
            os.replace(tmp, path)


def load_summary(dataset: LabelledImages, settings: RoarSettings, store: RoarStore | None = None) -> RoarSummary:
    """What is on disk for these settings (instant; nothing is computed)."""
    store = store or RoarStore()
    return summarize(store.load(experiment_key(dataset, settings)), dataset, settings)
