"""A process-wide cache of attribution maps, and of the top-1 class of each image.

Keyed by model weights, image content, class, method and resolved parameters, so
the gallery, the metric pages and the report builder reuse each other's maps and
a rerun with the same settings costs nothing. Bounded in bytes, least recently
used entries go first; safe to share between sessions (one lock).

A lookup with `target=None` (each image's top-1, the pages' default) needs the class
before it can form the key; `PredictionCache` remembers each image's top-1 per model,
so a hit runs no model at all (issue 15 measured 268 ms for a 16-image hit before, 70 %
of computing Grad-CAM afresh).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable, Sequence

import numpy as np
import torch

from .registry import ProgressFn, attribute, get_method, resolve_targets
from ..models.bundle import ModelBundle


class AttributionCache:
    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: np.ndarray) -> None:
        value = np.array(value, dtype=np.float32, copy=True)
        value.setflags(write=False)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class PredictionCache:
    """Top-1 class per (model id, image digest), least recently used first out past
    `max_entries`; thread-safe. Filled whenever logits are computed for images whose
    digests are known (`cached_attribute`'s misses, `remember`)."""

    def __init__(self, max_entries: int = 65_536) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, bundle: ModelBundle, digests: Sequence[str], logits: torch.Tensor) -> None:
        """Store the top-1 of `logits` (N, K), one row per digest."""
        classes = logits.argmax(dim=1).tolist()
        with self._lock:
            for digest, cls in zip(digests, classes, strict=True):
                self._entries[(bundle.model_id, digest)] = int(cls)
                self._entries.move_to_end((bundle.model_id, digest))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def top1(self, bundle: ModelBundle, images: torch.Tensor, digests: Sequence[str]) -> list[int]:
        """Each image's top-1 class; only the images never seen by this model go through it."""
        with self._lock:
            known = [self._entries.get((bundle.model_id, d)) for d in digests]
            for d, cls in zip(digests, known):
                if cls is not None:
                    self._entries.move_to_end((bundle.model_id, d))
        missing = [i for i, cls in enumerate(known) if cls is None]
        if missing:
            logits = bundle.logits(images[missing])
            self.remember(bundle, [digests[i] for i in missing], logits)
            for i, cls in zip(missing, logits.argmax(dim=1).tolist()):
                known[i] = cls
        return [int(cls) for cls in known]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


predictions = PredictionCache()  # per process, shared by every cache and session


def cache_key(bundle: ModelBundle, digest: str, target: int, method: str, params: dict[str, Any]) -> tuple:
    return (bundle.model_id, digest, int(target), method, tuple(sorted(params.items())))


def cached_attribute(
    cache: AttributionCache,
    bundle: ModelBundle,
    images: torch.Tensor,
    digests: Sequence[str],
    method: str,
    target: int | Sequence[int] | None = None,
    *,
    progress: ProgressFn | None = None,
    **params: Any,
) -> np.ndarray:
    """`attribute` through the cache: only the images without a cached map are computed,
    in one batched call. `digests` name the images' content (see `data.image_digest`)."""
    if len(digests) != images.shape[0]:
        raise ValueError("one digest per image is needed")
    resolved = get_method(method).resolve_params(params)
    if target is None:
        targets = predictions.top1(bundle, images, digests)
    else:
        targets = resolve_targets(bundle, images, target).tolist()
    keys = [cache_key(bundle, d, t, method, resolved) for d, t in zip(digests, targets)]
    found = [cache.get(k) for k in keys]
    missing = [i for i, m in enumerate(found) if m is None]
    if missing:
        computed = attribute(
            bundle, images[missing], method, [targets[i] for i in missing], progress=progress, **resolved
        )
        for i, m in zip(missing, computed):
            cache.put(keys[i], m)
            found[i] = m
    elif progress is not None:
        progress(len(keys), len(keys))
    return np.stack(found)
