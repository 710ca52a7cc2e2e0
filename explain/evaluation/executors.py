"""Who computes the chunks of an evaluation: this process (`LocalExecutor`), or Ray actors
(`RayExecutor`), one per GPU (`num_gpus=1`), each holding the model it works on. Both
call the same `evaluate_chunk` on the same chunks, in the same intra-op thread count,
and hand each finished chunk back to the caller, which alone writes the results.

Numbers are bit-identical between executors that compute on the same kind of device
with the same number of intra-op threads (a CPU convolution splits its sums per
thread): the Ray executor gives each CPU actor `threads` CPUs and threads, the count
the local executor uses, so on one machine both give the same rows.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import torch

from ..models.bundle import ModelBundle
from ..models.small_cnn import torch_threads
from .compute import ChunkResult, evaluate_chunk
from .sources import ImageIndex, ModelSource, load_bundle

log = logging.getLogger(__name__)

Progress = Callable[[int, int, int], None]  # (model index, chunk, model passes done since the last call)


@dataclass(frozen=True)
class Task:
    """One unit of work: one model on the images at `rows` (chunk number `chunk`)."""

    model_index: int
    chunk: int
    rows: tuple[int, ...]


def default_threads() -> int:
    """Intra-op threads per worker: torch's default here (the machine's cores)."""
    return max(1, torch.get_num_threads())


@dataclass(frozen=True)
class ExecutionOptions:
    """How to compute (never what: the settings say that). `threads`: intra-op threads
    per worker (None: `default_threads()`); `device`: None = CUDA when available;
    `allow_torchscript` and `max_model_bytes`: as the app's operator allows."""

    device: str | None = None
    threads: int | None = None
    allow_torchscript: bool = True
    max_model_bytes: int = 8 * 2**30

    @property
    def thread_count(self) -> int:
        return self.threads or default_threads()


class _Models:
    """The bundle of the model a worker is working on (one at a time: tasks arrive
    model by model, and a model's weights may be large)."""

    def __init__(self, options: ExecutionOptions) -> None:
        self.options = options
        self.index: int | None = None
        self.bundle: ModelBundle | None = None

    def get(self, index: int, source: ModelSource, read: Callable[[], bytes | None]) -> ModelBundle:
        if self.index != index or self.bundle is None:
            self.bundle = None  # let the previous model go before the next one loads
            self.bundle = load_bundle(
                source,
                read(),
                self.options.device,
                allow_torchscript=self.options.allow_torchscript,
                max_bytes=self.options.max_model_bytes,
            )
            self.index = index
        return self.bundle


class LocalExecutor:
    """Chunks computed one after another in this process, batched on the device."""

    name = "local"

    def __init__(self, options: ExecutionOptions = ExecutionOptions()) -> None:
        self.options = options

    def describe(self) -> dict[str, Any]:
        device = self.options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return {"executor": self.name, "device": device, "threads": self.options.thread_count, "workers": 1}

    def run(self, settings: Any, tasks: Sequence[Task], index: ImageIndex, progress: Progress | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[ChunkResult]:
        models = _Models(self.options)
        with torch_threads(self.options.thread_count):
            for task in tasks:
                if should_stop():
                    return
                source = settings.models[task.model_index]
                bundle = models.get(task.model_index, source, partial(source.read, self.options.max_model_bytes))
                report = None if progress is None else (lambda passes, t=task: progress(t.model_index, t.chunk, passes))
                yield evaluate_chunk(
                    settings, bundle, task.model_index, source.name, task.chunk, index.raw(task.rows), report
                )


class EvaluationWorker:
    """A Ray actor's state: the settings, its device and threads, and the model it holds."""

    def __init__(self, settings: Any, options: ExecutionOptions) -> None:
        torch.set_num_threads(options.thread_count)
        self.settings = settings
        self.models = _Models(options)

    def evaluate(self, model_index: int, data: list, chunk: int, raws: list) -> ChunkResult:
        """`data` is `[ObjectRef of the model file's bytes]` (or `[None]` for a named
        model), wrapped in a list so that Ray fetches it only when this actor loads it."""
        import ray

        source = self.settings.models[model_index]
        bundle = self.models.get(model_index, source, lambda: ray.get(data[0]) if data[0] is not None else None)
        return evaluate_chunk(self.settings, bundle, model_index, source.name, chunk, raws)


class RayExecutor:
    """Chunks computed by Ray actors: `address` joins a running cluster (else
    `RAY_ADDRESS`, else a local cluster is started and stopped again). One actor per
    GPU; on a cluster without GPUs, one per `threads` CPUs (`workers` caps the count).
    `ray.util.ActorPool` hands each actor the next (model, chunk) as it frees up; at most
    two chunks per actor are read ahead, so memory stays flat."""

    name = "ray"

    def __init__(self, options: ExecutionOptions = ExecutionOptions(), address: str | None = None,
                 workers: int | None = None) -> None:
        self.options = options
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.workers = workers
        self._described: dict[str, Any] = {"executor": self.name, "address": self.address or "local"}

    def describe(self) -> dict[str, Any]:
        return dict(self._described)

    def run(self, settings: Any, tasks: Sequence[Task], index: ImageIndex, progress: Progress | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[ChunkResult]:
        import ray
        from ray.util import ActorPool

        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, logging_level=logging.ERROR,
                         runtime_env={"py_modules": [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]})
            else:
                ray.init(include_dashboard=False, logging_level=logging.ERROR)
        actors: list[Any] = []  # Ray actor handles (Ray types them by the decorated class only)
        try:
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            threads = self.options.thread_count
            if gpus and self.options.device != "cpu":
                count, device, options = gpus, "cuda", {"num_gpus": 1, "num_cpus": 1}
            else:
                count, device, options = max(1, int(resources.get("CPU", 1)) // threads), "cpu", {"num_cpus": threads}
            if self.workers:
                count = min(count, self.workers)
            count = max(1, min(count, len(tasks)))
            self._described.update(device=device, threads=threads, workers=count, cluster=_plain(resources))
            worker = ray.remote(EvaluationWorker)
            worker_options = ExecutionOptions(
                device, threads, self.options.allow_torchscript, self.options.max_model_bytes
            )
            actors = [worker.options(**options).remote(settings, worker_options) for _ in range(count)]
            pool = ActorPool(actors)
            refs: dict[int, Any] = {}
            left = {m: sum(1 for t in tasks if t.model_index == m) for m in {t.model_index for t in tasks}}
            pending = iter(tasks)

            def submit_next() -> bool:
                task = next(pending, None)
                if task is None:
                    return False
                if task.model_index not in refs:
                    data = settings.models[task.model_index].read(self.options.max_model_bytes)
                    refs[task.model_index] = None if data is None else ray.put(data)
                raws = index.raw(task.rows)
                pool.submit(lambda actor, t: actor.evaluate.remote(t[0], [refs[t[0]]], t[1], raws),
                            (task.model_index, task.chunk))
                return True

            for _ in range(2 * count):
                if not submit_next():
                    break
            while pool.has_next():
                try:
                    result = pool.get_next_unordered(timeout=0.5)
                except TimeoutError:
                    if should_stop():
                        return
                    continue
                left[result.model_index] -= 1
                if not left[result.model_index]:
                    refs.pop(result.model_index, None)  # the object store may free this model's bytes
                yield result
                if should_stop():
                    return
                submit_next()
        finally:
            for actor in actors:
                ray.kill(actor)
            if started_here:
                ray.shutdown()


def _plain(resources: dict) -> dict[str, float]:
    return {k: float(v) for k, v in resources.items() if not k.startswith("node:")}
