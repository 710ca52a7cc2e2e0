"""What every analysis shares: frozen settings with a stable key, a run that yields
partial results and ends with the frozen result, and a load that rebuilds a finished
result from its stored parts.

An analysis is a frozen dataclass of its settings (plain values, tuples and nested
frozen dataclasses, so it is hashable, JSON-serialisable and comparable) with:

- `kind`: its registered name; `pool`: which job pool runs it;
- `key`: a hash of the kind, the store's format, the settings and the versions of the
  methods and metrics they use (`code_versions`): the job's identity, so a fix to one
  method or metric recomputes exactly the analyses that use it;
- `run(inputs, ctx)`: a generator that stores each finished part through `ctx`,
  yields partial results as they come, and yields the final result last;
- `load(ctx)`: the final result rebuilt from stored parts, or None if any is missing.

`inputs` are what the settings only name (the model, the preprocessed images, a
training set): they are given at run time and never stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from collections import deque
import typing
from typing import Any, ClassVar, Iterator, TypeVar

from ..jobs.context import JobContext
from ..jobs.store import STORE_FORMAT
from ..methods.registry import MethodSpec, method_version
from ..metrics.registry import metric_version

PLAN_SIZE = 224  # the image side a plan assumes before the images are prepared (the default model's input)
FORMAT_VERSION = STORE_FORMAT  # bump it in jobs.store: older results are recomputed, never misread
ANALYSES: dict[str, type["Analysis"]] = {}

A = TypeVar("A", bound="Analysis")


def register_analysis(cls: type[A]) -> type[A]:
    """Class decorator: make an analysis kind known (job listings, the CLI)."""
    if cls.kind in ANALYSES:
        raise ValueError(f"analysis kind {cls.kind!r} registered twice")
    ANALYSES[cls.kind] = cls
    return cls


@dataclasses.dataclass(frozen=True)
class Analysis:
    kind: ClassVar[str] = ""
    pool: ClassVar[str] = "interactive"

    def settings_record(self) -> dict[str, Any]:
        return _plain(self)

    @property
    def key(self) -> str:
        text = json.dumps([self.kind, FORMAT_VERSION, self.settings_record(), self.code_versions()],
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:24]

    def metric_keys(self) -> tuple[str, ...]:
        """The metric families this analysis computes (their versions join its key)."""
        return ()

    def code_versions(self) -> dict[str, dict[str, int]]:
        """The version of every method (each `MethodSpec` in the settings) and metric
        (`metric_keys`) the analysis uses."""
        specs = _method_specs(self)
        return {"methods": {spec.key: method_version(spec.key) for spec in specs},
                "metrics": {key: metric_version(key) for key in self.metric_keys()}}

    @property
    def title(self) -> str:
        return self.kind

    def planned_passes(self, size: int = PLAN_SIZE) -> float:
        """The model passes this analysis plans, at most, for images of side `size`: known
        from the settings alone, before it starts (what a visitor's budget admits)."""
        raise NotImplementedError

    def run(self, inputs: Any, ctx: JobContext) -> Iterator[Any]:
        raise NotImplementedError

    def load(self, ctx: JobContext) -> Any | None:
        raise NotImplementedError

    @classmethod
    def from_record(cls: type[A], record: dict[str, Any]) -> A:
        """The settings back from `settings_record()` (e.g. a job record on disk)."""
        return _build(cls, record)


def run_directly(analysis: Analysis, inputs: Any, ctx: JobContext | None = None) -> Any:
    """Run an analysis in the calling thread with nothing persisted; returns the result."""
    last = deque(analysis.run(inputs, ctx or JobContext.detached()), maxlen=1)  # run to the end, keep the final
    return last[0] if last else None


def analysis_from_record(record: dict[str, Any]) -> Analysis:
    """The analysis a job record on disk describes (`kind` and `settings`)."""
    kind = record.get("kind")
    if kind not in ANALYSES:
        raise ValueError(f"unknown analysis kind {kind!r}; known: {', '.join(sorted(ANALYSES))}")
    return ANALYSES[kind].from_record(record["settings"])


def _method_specs(value: Any) -> list[MethodSpec]:
    """Every `MethodSpec` inside a settings value (dataclasses, tuples, lists, dicts)."""
    if isinstance(value, MethodSpec):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in _method_specs(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [s for v in value for s in _method_specs(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _method_specs(v)]
    return []


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return value  # floats stay floats (1.0 and 1 are different settings values)
    return value


def _build(tp: Any, value: Any) -> Any:
    """`value` (plain JSON) converted to the annotated type `tp`: dataclasses, tuples,
    unions with None, and scalars; what settings use, nothing more."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        present = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _build(present[0], value)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in value)
        return tuple(_build(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = {f.name for f in dataclasses.fields(tp) if f.init}
        return tp(**{k: _build(hints[k], v) for k, v in value.items() if k in fields})
    if tp is float and isinstance(value, int):
        return float(value)
    if tp is Any or tp in (str, int, float, bool):
        return value
    return value
