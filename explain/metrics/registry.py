"""The one registry of metrics computed from attribution maps.

A metric family (e.g. deletion and insertion, computed from one pixel ranking) is
registered once, beside its code, with its scores' `MetricInfo`, its parameters (the
same `Param` type as methods, so widgets, the CLI and validation come for free) and
one function that turns one method's maps into `Curves` per score. Everything else
reaches it through the registry: the metric page, the report section, the report CLI
(`--sections <key>`) and the batch evaluation. Adding a metric is its own module and
one import line in `explain/metrics/__init__.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..methods.registry import MethodSpec, Param, ProgressFn, resolve_params
from ..models.bundle import ModelBundle
from .base import Curves, MetricInfo


@dataclass(frozen=True, eq=False)
class MetricInput:
    """One method's maps over a batch, and what they explain.

    `images` (N, C, H, W) normalised; `maps` (N, H, W); `targets` (N,) the explained
    class of each image, resolved once by the caller; `digests` name the images'
    content (for caching work shared by methods); `progress(done, total)` counts the
    model passes the metric makes."""

    bundle: ModelBundle
    images: torch.Tensor
    maps: np.ndarray
    targets: torch.Tensor
    method: MethodSpec
    digests: tuple[str, ...] = ()
    progress: ProgressFn | None = None


@dataclass(frozen=True)
class Strip:
    """What the model saw for one image under a metric: images in order, a caption each."""

    images: np.ndarray  # (K, H, W, 3) uint8
    captions: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Metric:
    """A registered metric family.

    `compute(input, params)` returns `Curves` for each of `scores` (by `MetricInfo.key`)
    for one method; `passes(params, n)` is the number of model passes that costs for
    `n` images (progress and ETA); `detail(input, params, i)` optionally shows what the
    model saw for image `i` (a `Strip`); `suggested_methods` are preselected on its page
    besides the methods the session chose elsewhere (XRAI on SIC/AIC, from the same paper)."""

    key: str
    label: str
    scores: tuple[MetricInfo, ...]
    compute: Callable[[MetricInput, Mapping[str, Any]], dict[str, Curves]]
    description: str
    params: tuple[Param, ...] = ()
    passes: Callable[[Mapping[str, Any], int], int] = lambda params, n: n
    detail: Callable[[MetricInput, Mapping[str, Any], int], Strip] | None = None
    suggested_methods: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        return self.scores[0].reference

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return resolve_params(self.label, self.params, params)

    def score(self, key: str) -> MetricInfo:
        for info in self.scores:
            if info.key == key:
                return info
        raise ValueError(f"{self.label} has no score {key!r}")


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    if metric.key in _REGISTRY:
        raise ValueError(f"metric {metric.key!r} registered twice")
    clash = {s.key for s in metric.scores} & {s.key for m in _REGISTRY.values() for s in m.scores}
    if clash:
        raise ValueError(f"score key(s) {sorted(clash)} already registered")
    _REGISTRY[metric.key] = metric
    return metric


def list_metrics() -> list[Metric]:
    return list(_REGISTRY.values())


def get_metric(key: str) -> Metric:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(f"Unknown metric {key!r}; known: {', '.join(_REGISTRY)}") from None


def score_infos(keys: Sequence[str] | None = None) -> dict[str, MetricInfo]:
    """Every registered score's `MetricInfo` by key (of the given metric families)."""
    metrics = [get_metric(k) for k in keys] if keys is not None else list_metrics()
    return {info.key: info for metric in metrics for info in metric.scores}
