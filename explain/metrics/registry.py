"""The one registry of metrics computed from attribution maps.

A metric family (e.g. deletion and insertion, computed from one pixel ranking) is
registered once, beside its code, with its scores' `MetricInfo`, its parameters (the
same `Param` type as methods, so widgets, the CLI and validation come for free) and
one function that turns maps into results per score. Everything else reaches it
through the registry: the metric page, the report section, the report CLI
(`--sections <key>`) and the batch evaluation. Adding a metric is its own module and
one import line in `explain/metrics/__init__.py`.

Two kinds of family share the registry (and everything built on it):
- `Metric` scores one method at a time: `compute(MetricInput, params)` returns `Curves`
  per score (curves, or one value per image);
- `Comparison` compares the methods with each other: `compute(ComparisonInput, params)`
  gets every method's maps at once and returns `Pairs` per score (a methods x methods
  matrix per image).
Families with the same `page` share one page titled by it (the sanity checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch

from ..methods.registry import MethodSpec, Param, ProgressFn, get_method, resolve_params
from ..models.bundle import ModelBundle
from .base import Curves, MetricInfo, Pairs


@dataclass(frozen=True, eq=False)
class MetricInput:
    """One method's maps over a batch, and what they explain.

    `images` (N, C, H, W) normalised; `maps` (N, H, W); `targets` (N,) the explained
    class of each image, resolved once by the caller; `digests` name the images'
    content (for caching work shared by methods); `progress(done, total)` counts the
    model passes the metric makes; `masks` (N, H, W) bool, the ground truth (where the
    evidence is) in the model's view of each image, all False for an image without one
    (None: the data has no ground truth)."""

    bundle: ModelBundle
    images: torch.Tensor
    maps: np.ndarray
    targets: torch.Tensor
    method: MethodSpec
    digests: tuple[str, ...] = ()
    progress: ProgressFn | None = None
    masks: np.ndarray | None = None

    @property
    def passes_per_map(self) -> int:
        """Model passes one map of this method costs for one image (metrics that
        recompute maps count their progress in these)."""
        return method_passes(self.method, int(self.images.shape[-1]))


def method_passes(spec: MethodSpec, size: int) -> int:
    """Passes per image of one map of `spec` (1 for keys outside the method registry)."""
    try:
        method = get_method(spec.key)
    except ValueError:
        return 1
    return method.evals_per_image(spec.resolved, size)


@dataclass(frozen=True, eq=False)
class ComparisonInput:
    """Every method's maps over one batch: `maps[ident]` is (N, H, W), in the order of
    `methods`; the rest as in `MetricInput`."""

    bundle: ModelBundle
    images: torch.Tensor
    maps: Mapping[str, np.ndarray]
    targets: torch.Tensor
    methods: tuple[MethodSpec, ...]
    digests: tuple[str, ...] = ()
    progress: ProgressFn | None = None


@dataclass(frozen=True)
class Strip:
    """What the model saw for one image under a metric: images in order, a caption each.

    With `maps` (K, H, W), image k is shown with map k drawn over it (an all-NaN map:
    the image as it is); with `outlines` (K, H, W) bool, a ground-truth mask is tinted and
    outlined over image k. Metrics hand over plain arrays and the analysis draws them
    (metrics never import the plotting layer)."""

    images: np.ndarray  # (K, H, W, 3) uint8
    captions: tuple[str, ...]
    note: str = ""
    maps: np.ndarray | None = None
    outlines: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class MetricFamily:
    """What every registered family declares: key, label, its scores' `MetricInfo`s, a
    description, its parameters, `passes(params, n)` (model passes beyond recomputed
    maps for `n` images: progress and ETA), methods preselected on its page besides
    the session's (`suggested_methods`: XRAI on SIC/AIC, from the same paper), the
    `page` it shares with other families ("" = a page of its own), and its `version`:
    bump it whenever the metric's definition or numerics change; it is part of every
    stored score's key, so a fix recomputes this metric's results and no others; and
    whether it needs ground truth (`needs_masks`: offered only for data with masks or boxes)."""

    key: str
    label: str
    scores: tuple[MetricInfo, ...]
    description: str
    params: tuple[Param, ...] = ()
    passes: Callable[[Mapping[str, Any], int], int] = lambda params, n: n
    suggested_methods: tuple[str, ...] = ()
    page: str = ""
    version: int = 1
    needs_masks: bool = False

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


@dataclass(frozen=True, kw_only=True)
class Metric(MetricFamily):
    """A family that scores one method at a time.

    `compute(input, params)` returns `Curves` for each of `scores` (by `MetricInfo.key`)
    for one method; `maps_per_image(params)` is how many maps per image it recomputes
    with the method itself (model randomisation: one per step), costed at the method's
    own passes; `detail(input, params, i)` optionally shows one image under the metric
    (a `Strip`, titled `detail_title`)."""

    compute: Callable[[MetricInput, Mapping[str, Any]], dict[str, Curves]]
    maps_per_image: Callable[[Mapping[str, Any]], int] = lambda params: 0
    detail: Callable[[MetricInput, Mapping[str, Any], int], Strip] | None = None
    detail_title: str = "What the model saw"

    def cost(self, params: Mapping[str, Any], n: int, spec: MethodSpec, size: int) -> int:
        """Model passes of one method's run on `n` images of side `size`."""
        return self.passes(params, n) + self.maps_per_image(params) * n * method_passes(spec, size)


@dataclass(frozen=True, kw_only=True)
class Comparison(MetricFamily):
    """A family that compares methods: `compute(input, params)` gets every method's
    maps and returns `Pairs` for each of `scores`; `passes(params, n)` costs the whole
    comparison. It has no per-image detail view."""

    compute: Callable[[ComparisonInput, Mapping[str, Any]], dict[str, Pairs]]
    detail: ClassVar[None] = None


# Pages that several families share (a family names one in `page`); the sanity checks,
# localisation and complexity pages are named beside their first family.
FAITHFULNESS_PAGE = "Faithfulness"
ROBUSTNESS_PAGE = "Robustness"
AXIOMATIC_PAGE = "Axiomatic"

_REGISTRY: dict[str, MetricFamily] = {}


def register_metric(metric: MetricFamily) -> MetricFamily:
    if metric.key in _REGISTRY:
        raise ValueError(f"metric {metric.key!r} registered twice")
    clash = {s.key for s in metric.scores} & {s.key for m in _REGISTRY.values() for s in m.scores}
    if clash:
        raise ValueError(f"score key(s) {sorted(clash)} already registered")
    _REGISTRY[metric.key] = metric
    return metric


def list_metrics() -> list[MetricFamily]:
    return list(_REGISTRY.values())


def metric_version(key: str) -> int:
    """The registered version of metric family `key` (0 when not registered)."""
    metric = _REGISTRY.get(key)
    return metric.version if metric is not None else 0


def get_metric(key: str) -> MetricFamily:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(f"Unknown metric {key!r}; known: {', '.join(_REGISTRY)}") from None


def score_infos(keys: Sequence[str] | None = None) -> dict[str, MetricInfo]:
    """Every registered score's `MetricInfo` by key (of the given metric families)."""
    metrics = [get_metric(k) for k in keys] if keys is not None else list_metrics()
    return {info.key: info for metric in metrics for info in metric.scores}
