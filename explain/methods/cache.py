"""A process-wide cache of attribution maps.

Keyed by model weights, image content, class, method and resolved parameters, so
the gallery, the metric pages and the report builder reuse each other's maps and
a rerun with the same settings costs nothing. Bounded in bytes, least recently
used entries go first; safe to share between sessions (one lock).
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


def cache_key(model_id: str, digest: str, target: int, method: str, params: dict[str, Any]) -> tuple:
    """What names a map: the model (weights and preprocessing), the image content, the
    explained class, the method and its resolved parameters."""
    return (model_id, digest, int(target), method, tuple(sorted(params.items())))


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
    targets = resolve_targets(bundle, images, target).tolist()
    keys = [cache_key(bundle.model_id, d, t, method, resolved) for d, t in zip(digests, targets)]
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


_DEFAULT_CACHE: AttributionCache | None = None
_DEFAULT_CACHE_LOCK = threading.Lock()


def default_cache() -> AttributionCache:
    """The process-wide attribution cache shared by pages, jobs and the CLI."""
    global _DEFAULT_CACHE
    with _DEFAULT_CACHE_LOCK:
        if _DEFAULT_CACHE is None:
            _DEFAULT_CACHE = AttributionCache()
        return _DEFAULT_CACHE
