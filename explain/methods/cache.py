"""A process-wide cache of attribution maps, and of the top-1 class of each image.

Keyed by model weights, image content, class, method, its version and resolved parameters, so
the gallery, the metric pages and the report builder reuse each other's maps and
a rerun with the same settings costs nothing. Bounded in bytes, least recently
used entries go first; safe to share between sessions (one lock).

A lookup with `target=None` (each image's top-1, the pages' default) needs the class
before it can form the key; `PredictionCache` remembers each image's top-1 per model,
so a hit runs no model at all (issue 15 measured 268 ms for a 16-image hit before, 70 %
of computing Grad-CAM afresh).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Hashable, Sequence

import numpy as np
import torch

from .registry import ProgressFn, attribute, get_method, method_version, resolve_targets
from ..models.bundle import ModelBundle

log = logging.getLogger(__name__)


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


Prediction = tuple[tuple[int, str, float], ...]  # top-k (class, name, probability), best first
TOP_K = 5
MAX_PENDING = 16  # background predictions waiting for a busy model at once (each a thread)


class PredictionCache:
    """Each image's top-5 predictions (class, name, probability) per (model id, image
    digest), least recently used first out past `max_entries`; thread-safe. Images
    seen before by a model cost no forward pass: a cache hit with `target=None` and a
    page's first paint of a known selection run no model at all."""

    def __init__(self, max_entries: int = 65_536) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], Prediction] = OrderedDict()
        self._pending: set[tuple[str, tuple[str, ...]]] = set()  # background predictions under way
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, bundle: ModelBundle, digests: Sequence[str], logits: torch.Tensor) -> list[Prediction]:
        """Store (and return) the top-5 of `logits` (N, K), one row per digest."""
        probs = logits.float().softmax(dim=1)
        values, indices = probs.topk(min(TOP_K, probs.shape[1]), dim=1)
        rows = [
            tuple((int(i), bundle.class_names[int(i)], float(v)) for v, i in zip(vs, ids, strict=True))
            for vs, ids in zip(values, indices, strict=True)
        ]
        with self._lock:
            for digest, row in zip(digests, rows, strict=True):
                self._entries[(bundle.model_id, digest)] = row
                self._entries.move_to_end((bundle.model_id, digest))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return rows

    def known(self, bundle: ModelBundle, digests: Sequence[str]) -> list[Prediction | None]:
        """Each image's remembered top-5, None where this model has not seen it; no model runs."""
        with self._lock:
            known = [self._entries.get((bundle.model_id, d)) for d in digests]
            for d, row in zip(digests, known, strict=True):
                if row is not None:
                    self._entries.move_to_end((bundle.model_id, d))
        return known

    def top_k(self, bundle: ModelBundle, images: torch.Tensor, digests: Sequence[str]) -> list[Prediction]:
        """Each image's top-5; only the images never seen by this model go through it."""
        known = self.known(bundle, digests)
        missing = [i for i, row in enumerate(known) if row is None]
        if missing:
            rows = self.remember(bundle, [digests[i] for i in missing], bundle.logits(images[missing]))
            for i, row in zip(missing, rows, strict=True):
                known[i] = row
        return known  # type: ignore[return-value]

    def top_k_unless_busy(self, bundle: ModelBundle, images: torch.Tensor,
                          digests: Sequence[str]) -> list[Prediction] | None:
        """`top_k` when it needs no model or the model is free; else None, and the missing
        images are predicted in the background as soon as the model is free (between two
        chunks of the job using it): a page paints its photos meanwhile and asks again."""
        known = self.known(bundle, digests)
        missing = [i for i, row in enumerate(known) if row is None]
        if not missing:
            return known  # type: ignore[return-value]
        if not bundle.lock.held_by_other():
            return self.top_k(bundle, images, digests)
        self._predict_later(bundle, images[missing], [digests[i] for i in missing])
        return None

    def _predict_later(self, bundle: ModelBundle, images: torch.Tensor, digests: Sequence[str]) -> None:
        """Predict `images` on a background thread (once per model and images; at most
        `MAX_PENDING` at a time, further requests are dropped and asked again later)."""
        key = (bundle.model_id, tuple(digests))
        with self._lock:
            if key in self._pending or len(self._pending) >= MAX_PENDING:
                return
            self._pending.add(key)

        def predict() -> None:
            try:
                self.remember(bundle, digests, bundle.logits(images))
            except Exception:  # a page asking again shows the error in its own thread
                log.exception("background top-5 prediction failed")
            finally:
                with self._lock:
                    self._pending.discard(key)

        threading.Thread(target=predict, name="top5-prediction", daemon=True).start()

    def top1(self, bundle: ModelBundle, images: torch.Tensor, digests: Sequence[str]) -> list[int]:
        """Each image's top-1 class (see `top_k`)."""
        return [row[0][0] for row in self.top_k(bundle, images, digests)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


predictions = PredictionCache()  # per process, shared by every cache, analysis and session


def cache_key(model_id: str, digest: str, target: int, method: str, params: dict[str, Any]) -> tuple:
    """What names a map: the model (weights and preprocessing), the image content, the
    explained class, the method, its version (a fix to the method makes new keys) and its
    resolved parameters."""
    return (model_id, digest, int(target), method, method_version(method), tuple(sorted(params.items())))


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
    keys = [cache_key(bundle.model_id, d, t, method, resolved) for d, t in zip(digests, targets, strict=True)]
    cached = [cache.get(k) for k in keys]
    found = {i: m for i, m in enumerate(cached) if m is not None}
    missing = [i for i in range(len(keys)) if i not in found]
    if missing:
        computed = attribute(
            bundle, images[missing], method, [targets[i] for i in missing], progress=progress, **resolved
        )
        for i, m in zip(missing, computed, strict=True):
            cache.put(keys[i], m)
            found[i] = m
    elif progress is not None:
        progress(len(keys), len(keys))
    return np.stack([found[i] for i in range(len(keys))])


_DEFAULT_CACHE: AttributionCache | None = None
_DEFAULT_CACHE_LOCK = threading.Lock()


def default_cache() -> AttributionCache:
    """The process-wide attribution cache shared by pages, jobs and the CLI."""
    global _DEFAULT_CACHE
    with _DEFAULT_CACHE_LOCK:
        if _DEFAULT_CACHE is None:
            _DEFAULT_CACHE = AttributionCache()
        return _DEFAULT_CACHE
