"""Attribution maps for analyses: found in memory, then on disk, else computed.

Maps are stored by content (model id, image digest, explained class, method, its
version and resolved parameters, and the store's format) in the shared "maps" scope of the job store, one file per map, so
every analysis and every job reuses every map already computed, across page switches,
reloads and restarts. The process-wide `AttributionCache` sits in front of the disk.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterator, Sequence

import numpy as np

from ..jobs.context import JobContext
from ..jobs.store import STORE_FORMAT
from ..methods.cache import AttributionCache, cache_key, default_cache
from ..methods.registry import MethodSpec, attribute, get_method
from .inputs import PreparedImages, Subject

MAPS_SCOPE = "maps"


def map_part_name(key: tuple) -> str:
    """The stored name of a map: a digest of its cache key and the store's format."""
    text = json.dumps([STORE_FORMAT, key], default=str)
    return "map-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:32]


def find_map(cache: AttributionCache, disk, key: tuple, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    """The map named `key` from memory, else from disk (then kept in memory), else None."""
    found = cache.get(key)
    if found is not None:
        return found
    stored = disk.get_arrays(map_part_name(key))
    if stored is None or stored.get("map") is None or stored["map"].ndim != 2:
        return None
    if shape is not None and stored["map"].shape != tuple(shape):
        return None
    cache.put(key, stored["map"])
    return stored["map"]


def maps_passes(specs: Sequence[MethodSpec], subject: Subject, size: int) -> int:
    """Forward(+backward) passes the maps of these methods cost for the subject's images."""
    return sum(get_method(spec.key).evals_per_image(spec.resolved, size) for spec in specs) * len(subject.images)


def iter_maps(
    prepared: PreparedImages,
    subject: Subject,
    specs: Sequence[MethodSpec],
    ctx: JobContext,
    cache: AttributionCache | None = None,
) -> Iterator[tuple[MethodSpec, list[int], dict[str, np.ndarray]]]:
    """Fill one (N, H, W) array per method (NaN until ready) and yield after each chunk
    of images: `(method, rows just filled, all arrays)`. Progress advances by passes
    (plan them with `maps_passes`); maps found in memory or on disk count as reused. The explained classes are the
    subject's, passed to every method explicitly."""
    bundle = prepared.bundle
    cache = cache or default_cache()
    disk = ctx.shared(MAPS_SCOPE)
    n = len(subject.images)
    size = int(prepared.batch.shape[-1])
    height, width = prepared.batch.shape[-2:]
    maps = {spec.ident: np.full((n, height, width), np.nan, dtype=np.float32) for spec in specs}
    for spec in specs:
        get_method(spec.key).check_available(bundle)
    for spec in specs:
        method = get_method(spec.key)
        params = spec.resolved
        per_image = method.evals_per_image(params, size)
        keys = [cache_key(subject.model_id, ref.digest, t, spec.key, params) for ref, t in zip(subject.images, subject.targets)]
        missing = []
        for i, key in enumerate(keys):
            found = find_map(cache, disk, key, (height, width))
            if found is None:
                missing.append(i)
            else:
                maps[spec.ident][i] = found
        reused = [i for i in range(n) if i not in set(missing)]
        if reused:
            ctx.reused(per_image * len(reused))
            yield spec, reused, maps
        chunk = method.images_per_chunk(params, bundle, size)
        for start in range(0, len(missing), chunk):
            rows = missing[start : start + chunk]
            ctx.working_on(f"{method.label}: {', '.join(subject.images[i].name for i in rows)}")
            computed = attribute(bundle, prepared.batch[rows], spec.key, [subject.targets[i] for i in rows], **params)
            for i, m in zip(rows, computed):
                maps[spec.ident][i] = m
                cache.put(keys[i], m)
                disk.put_arrays(map_part_name(keys[i]), {"map": m})
            ctx.advance(per_image * len(rows))
            yield spec, rows, maps


def all_maps(prepared: PreparedImages, subject: Subject, specs: Sequence[MethodSpec], ctx: JobContext) -> dict[str, np.ndarray]:
    """Every method's maps (see `iter_maps`), once all are ready."""
    maps: dict[str, np.ndarray] = {}
    for _, _, maps in iter_maps(prepared, subject, specs, ctx):
        pass
    return maps or {spec.ident: np.zeros((0, *prepared.batch.shape[-2:]), np.float32) for spec in specs}


def stored_maps(subject: Subject, specs: Sequence[MethodSpec], ctx: JobContext) -> dict[str, np.ndarray] | None:
    """Every method's maps from memory or the store alone (no model), or None when any
    is missing: how a finished result is rebuilt."""
    cache = default_cache()
    disk = ctx.shared(MAPS_SCOPE)
    out = {}
    for spec in specs:
        rows = []
        for ref, target in zip(subject.images, subject.targets):
            found = find_map(cache, disk, cache_key(subject.model_id, ref.digest, target, spec.key, spec.resolved))
            if found is None:
                return None
            rows.append(found)
        out[spec.ident] = np.stack(rows).astype(np.float32, copy=False)
    return out
