"""Dataset-scale evaluation as an analysis (a long job): every model x image x method,
each registered metric's per-image AUC, streamed to a results directory.

The settings name the models (files by path and content digest), the image set (by its
listing), the methods with their parameters, the metric families with theirs, the
class to explain (each image's top-1 or its label), the chunk size and the results
directory. The run writes one part per (model, chunk) as it finishes and skips parts
already written, so a stopped or killed run resumes where it was; the page, the CLI
and the report CLI all run this one analysis.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..config import cache_dir
from ..data.datasets import DatasetLimits
from ..jobs.context import JobContext
from ..methods.registry import MethodSpec, get_method, method_version
from ..metrics.registry import get_metric, metric_version
from ..analyses.base import Analysis, register_analysis
from .compute import SCORE_PREFIX, metric_passes, score_keys
from .executors import ExecutionOptions, LocalExecutor, RayExecutor, Task
from .sources import DataSource, ModelSource
from .store import ResultsDir, ResultsError

log = logging.getLogger(__name__)
CLASS_MODES = ("top1", "label")
DEFAULT_CHUNK = 64
FORMAT = 1
RUNS_FOLDER = "evaluations"


def runs_dir() -> Path:
    """Where the app's own evaluation runs go: `$EXPLAIN_CACHE_DIR/evaluations/`."""
    return cache_dir() / RUNS_FOLDER


@dataclass(frozen=True)
class MetricChoice:
    """A registered metric family and its parameters (every one resolved)."""

    key: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, key: str, params: Mapping[str, Any] | None = None) -> "MetricChoice":
        return cls(key, tuple(sorted(get_metric(key).resolve_params(dict(params or {})).items())))

    @property
    def resolved(self) -> dict[str, Any]:
        return get_metric(self.key).resolve_params(dict(self.params))


@dataclass(frozen=True, eq=False)
class EvaluationInputs:
    """How to run it (nothing here changes the rows): `executor` "local" or "ray"
    (`ray_address`: a running cluster; `workers` caps the actors), the execution
    options, and where data may come from (`data_roots`: None = anywhere, as on the
    command line; the app passes the operator's folders and limits)."""

    executor: str = "local"
    options: ExecutionOptions = field(default_factory=ExecutionOptions)
    ray_address: str | None = None
    workers: int | None = None
    data_roots: tuple[Path, ...] | None = None
    limits: DatasetLimits | None = None

    def make_executor(self) -> LocalExecutor | RayExecutor:
        if self.executor == "local":
            return LocalExecutor(self.options)
        if self.executor == "ray":
            return RayExecutor(self.options, self.ray_address, self.workers)
        raise ValueError(f"executor must be local or ray, not {self.executor!r}")


@register_analysis
@dataclass(frozen=True)
class Evaluation(Analysis):
    kind = "evaluation"
    pool = "long"

    models: tuple[ModelSource, ...]
    data: DataSource
    methods: tuple[MethodSpec, ...]
    metrics: tuple[MetricChoice, ...]
    class_mode: str = "top1"
    chunk_size: int = DEFAULT_CHUNK
    save_maps: bool = False
    out: str = ""

    def metric_keys(self) -> tuple[str, ...]:
        return tuple(choice.key for choice in self.metrics)

    def __post_init__(self) -> None:
        if self.class_mode not in CLASS_MODES:
            raise ValueError(f"the class to explain must be one of {CLASS_MODES}, not {self.class_mode!r}")
        if not 1 <= self.chunk_size <= 100_000:
            raise ValueError(f"chunk size must lie in [1, 100000], not {self.chunk_size}")
        if not self.models or not self.methods or not self.metrics:
            raise ValueError("an evaluation needs at least one model, one method and one metric")
        for spec in self.methods:
            get_method(spec.key)
        keys = score_keys(self.metrics)
        if len(set(keys)) != len(keys):
            raise ValueError("a metric family is chosen twice")

    @classmethod
    def of(cls, models: Sequence[ModelSource], data: DataSource, methods: Sequence[MethodSpec],
           metrics: Sequence[MetricChoice], *, class_mode: str = "top1", chunk_size: int = DEFAULT_CHUNK,
           save_maps: bool = False, out: str | Path | None = None) -> "Evaluation":
        """Settings with the results directory resolved (None: a folder of the app's own
        runs named after the settings)."""
        settings = cls(
            tuple(models), data, tuple(methods), tuple(metrics), class_mode, int(chunk_size), bool(save_maps)
        )
        folder = Path(out).expanduser().resolve() if out is not None else runs_dir() / settings.key
        return replace(settings, out=str(folder))

    @property
    def title(self) -> str:
        return (f"Evaluation · {len(self.models)} model(s) × {self.data.label} × {len(self.methods)} method(s) "
                f"× {len(self.metrics)} metric(s)")

    @property
    def results(self) -> ResultsDir:
        return ResultsDir(self.out)

    def run(self, inputs: EvaluationInputs, ctx: JobContext) -> Iterator["EvaluationResult"]:
        results = self.results
        with results.writing():
            previous = results.manifest_for_writing()
            if previous is not None and not self.wrote(previous):
                raise ResultsError(f"{results.name} holds another evaluation (other settings, or methods/metrics "
                                   "changed since), left as it is; choose another results folder")
            with self.data.open(inputs.data_roots, inputs.limits) as index:
                yield from self._run(inputs, ctx, results, index, previous)

    def _run(
        self, inputs: EvaluationInputs, ctx: JobContext, results: ResultsDir, index, previous
    ) -> Iterator["EvaluationResult"]:
        n = len(index)
        chunks = math.ceil(n / self.chunk_size)
        rows = [tuple(range(c * self.chunk_size, min(n, (c + 1) * self.chunk_size))) for c in range(chunks)]
        done = results.done()
        tasks = [Task(m, c, rows[c]) for m in range(len(self.models)) for c in range(chunks) if (m, c) not in done]
        executor = inputs.make_executor()
        manifest = self._manifest(previous, index, chunks)
        manifest["state"] = "running"
        run = {"started": time.time(), "chunks_computed": 0, "chunks_reused": len(self.models) * chunks - len(tasks),
               **executor.describe()}
        manifest["runs"].append(run)
        results.write_manifest(manifest)
        ctx.plan(len(self.models) * n, "images")
        ctx.reused(sum(len(rows[c]) for m, c in done if m < len(self.models) and c < chunks))
        yield EvaluationResult.open(self.out)

        passes_per_image = self._passes_per_image()
        reported: dict[tuple[int, int], float] = {}

        def progress(model_index: int, chunk: int, passes: int) -> None:
            """Passes done inside a chunk, as a fraction of its images (the local executor)."""
            size = len(rows[chunk])
            units = min(size, reported.get((model_index, chunk), 0.0) + passes / passes_per_image) - reported.get(
                (model_index, chunk), 0.0
            )
            reported[(model_index, chunk)] = reported.get((model_index, chunk), 0.0) + units
            ctx.advance(units)

        started = time.perf_counter()
        if tasks:
            ctx.working_on(
                f"{self.models[tasks[0].model_index].label}: {len(tasks)} chunk(s) of {self.chunk_size} image(s) to go"
            )
            ctx.start_clock()
        run["images_computed"] = 0
        try:
            for result in executor.run(self, tasks, index, progress, ctx.should_stop):
                try:
                    results.write_chunk(result)
                except OSError as exc:  # a full or read-only disk: say what is kept and how to go on
                    kept = len(results.done())
                    raise OSError(f"{results.name}: a part could not be written ({exc.strerror or exc}); the {kept} "
                                  "chunk(s) finished before it are kept. Free some space (or choose another results "
                                  "folder) and rerun with the same settings to go on from them.") from None
                run["chunks_computed"] += 1
                run["images_computed"] += len(rows[result.chunk])
                ctx.advance(len(rows[result.chunk]) - reported.pop((result.model_index, result.chunk), 0.0))
                ctx.working_on(f"{self.models[result.model_index].label}: chunk {result.chunk + 1}/{chunks} done")
                yield EvaluationResult.open(self.out)
        finally:
            run.update(executor.describe())
            run["finished"] = time.time()
            run["seconds"] = round(time.perf_counter() - started, 3)
            if run["images_computed"] and run["seconds"] > 0:
                run["images_per_second"] = round(run["images_computed"] / run["seconds"], 3)
            manifest["state"] = "complete" if len(results.done()) >= len(self.models) * chunks else "stopped"
            manifest.update(self._collected(results))
            try:
                results.write_manifest(manifest)
            except OSError:  # the error that stopped the run says what to do; the manifest of its start stays
                log.warning("could not update the manifest of %s", results.name)
        ctx.check()  # a stop request ends the job as cancelled, its finished chunks kept
        yield EvaluationResult.open(self.out)

    def planned_passes(self, size: int = 224) -> float:
        """Every model's passes over the images (at most `max_images`, else the listing's
        cap): each image's prediction, maps and metrics."""
        images = self.data.max_images or self.data.planned_images
        return len(self.models) * images * self._passes_per_image(size)

    def wrote(self, manifest: Mapping[str, Any]) -> bool:
        """Whether these settings, with today's method and metric versions, wrote `manifest`
        (the results folder's own place aside, so a folder copied or moved elsewhere goes on
        where it was)."""
        def placeless(settings: Any) -> Any:
            return {k: v for k, v in settings.items() if k != "out"} if isinstance(settings, dict) else settings

        versions = ([m.get("version") for m in manifest.get("methods", []) if isinstance(m, dict)],
                    manifest.get("metric_versions"))
        today = ([method_version(s.key) for s in self.methods], {c.key: metric_version(c.key) for c in self.metrics})
        return placeless(manifest.get("settings")) == placeless(self.settings_record()) and versions == today

    def load(self, ctx: JobContext) -> "EvaluationResult | None":
        try:
            result = EvaluationResult.open(self.out)
        except ResultsError:  # none yet, or damaged: the run says why (and refuses to mix)
            return None
        return result if result.complete and self.wrote(result.manifest) else None

    # ------------------------------------------------------------------ manifest
    def _passes_per_image(self, size: int = 224) -> float:
        """Model passes per image (one model, all methods and metrics) at a nominal size,
        for progress inside a chunk."""
        maps = sum(get_method(s.key).evals_per_image(s.resolved, size) for s in self.methods)
        return float(max(1, 1 + maps + metric_passes(self.methods, self.metrics, 1, size)))

    def _manifest(self, previous: dict | None, index, chunks: int) -> dict[str, Any]:
        manifest = dict(previous or {})
        manifest.update(
            {
                "format": FORMAT,
                "kind": self.kind,
                "key": self.key,
                "title": self.title,
                "settings": self.settings_record(),
                "images": len(index),
                "chunks": chunks,
                "chunk_size": self.chunk_size,
                "classes": index.classes,
                "data": {
                    "label": self.data.label,
                    "kind": self.data.kind,
                    "path": self.data.path,
                    "name": index.name,
                    "skipped": index.skipped[:1000],
                },
                "models": [
                    {"index": i, "label": s.label, "kind": s.kind, "path": s.name, "arch": s.arch, "digest": s.digest}
                    for i, s in enumerate(self.models)
                ],
                "methods": [
                    {
                        "ident": s.ident,
                        "key": s.key,
                        "label": s.label,
                        "params": s.resolved,
                        "version": method_version(s.key),
                    }
                    for s in self.methods
                ],
                "metric_versions": {c.key: metric_version(c.key) for c in self.metrics},
                "scores": [
                    {
                        "key": info.key,
                        "name": info.name,
                        "metric": c.key,
                        "higher_is_better": info.higher_is_better,
                        "column": SCORE_PREFIX + info.key,
                    }
                    for c in self.metrics
                    for info in get_metric(c.key).scores
                ],
                "versions": _versions(),
            }
        )
        manifest.setdefault("created", time.time())
        manifest.setdefault("runs", [])
        return manifest

    def _collected(self, results: ResultsDir) -> dict[str, Any]:
        """Model cards and notes, read back from the finished parts (each part carries its own)."""
        import json

        import pyarrow.parquet as pq

        cards: dict[int, dict] = {}
        notes: list[str] = []
        for m, c in sorted(results.done()):
            metadata = pq.read_schema(results.rows_path(m, c)).metadata or {}
            if m not in cards and b"card" in metadata:
                cards[m] = json.loads(metadata[b"card"])
            notes += json.loads(metadata.get(b"notes", b"[]"))
        return {"cards": {str(m): card for m, card in sorted(cards.items())}, "notes": notes[:1000],
                "notes_total": len(notes)}


def _versions() -> dict[str, str]:
    import numpy
    import pandas
    import pyarrow
    import torch
    import torchvision

    found = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
             "numpy": numpy.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__}
    try:
        import ray

        found["ray"] = ray.__version__
    except ImportError:
        pass
    return found


from .results import EvaluationResult  # noqa: E402  (the result reads what the analysis writes)
