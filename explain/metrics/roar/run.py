"""Running ROAR: train the base model, rank pixels per method, retrain per fraction and
repeat, saving each result as soon as it is done (an interrupted run resumes)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ...data.training import LabelledImages
from ...methods.registry import get_method, list_methods
from ...models.bundle import ModelBundle
from ...models.small_cnn import (
    TrainingStopped, TrainRecipe, accuracy, architecture_name, new_model, small_cnn_bundle, torch_threads,
    train_small_cnn, trained_base_model, training_threads,
)
from .removal import degrade, method_ranker, pixel_order, random_ranker
from .results import RoarSummary, summarize
from .settings import RANDOM, MethodSpec, Ranker, RoarSettings, entry_key, experiment_key
from .store import RoarStore


@dataclass
class RoarStatus:
    """Progress of a run, written by the worker and read by pages (under `lock`)."""

    state: str = "pending"  # pending, running, done, failed, cancelled
    phase: str = ""
    done: int = 0  # retrainings finished (including those found on disk)
    total: int = 0
    phase_done: int = 0
    phase_total: int = 0
    trainings_run: int = 0  # retrainings this run actually performed
    error: str = ""
    summary: RoarSummary | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_retrained: Callable[["RoarStatus"], None] | None = None

    def set(self, **changes: Any) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def snapshot(self) -> "RoarStatus":
        with self.lock:
            return replace(self, cancel_event=self.cancel_event, lock=threading.Lock(), on_retrained=None)

    @property
    def fraction_done(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


class RoarCancelled(RuntimeError):
    """The run stopped on request; everything finished so far is saved."""


def run_roar(
    dataset: LabelledImages,
    settings: RoarSettings,
    *,
    store: RoarStore | None = None,
    status: RoarStatus | None = None,
    rankers: Mapping[str, Ranker] | None = None,
    device: torch.device | str = "cpu",
    threads: int | None = None,
) -> RoarSummary:
    """Run (or resume) ROAR/KAR for `settings` on `dataset` and return the summary.

    `rankers` adds named rankings besides the registry (e.g. an oracle in tests); the
    method key `random` is the built-in baseline. Raises `RoarCancelled` when
    `status.cancel_event` is set; every retraining finished before is on disk.
    `threads`: intra-op threads for the run (default `training_threads()`).
    """
    with torch_threads(threads or training_threads()):
        return _run_roar(dataset, settings, store, status, rankers, device)


def _run_roar(dataset: LabelledImages, settings: RoarSettings, store: RoarStore | None, status: RoarStatus | None,
              rankers: Mapping[str, Ranker] | None, device: torch.device | str) -> RoarSummary:
    store = store or RoarStore()
    status = status or RoarStatus()
    rankers = dict(rankers or {})
    key = experiment_key(dataset, settings)
    keep = settings.mode == "kar"
    timings = {"base_model": 0.0, "attribution": 0.0, "retraining": 0.0, "evaluation": 0.0}
    for method in settings.all_methods:  # fail on unknown names before any work
        if method.key != RANDOM and method.key not in rankers:
            get_method(method.key).resolve_params(dict(method.params))

    record = store.load(key)
    summary = summarize(record, dataset, settings)
    status.set(state="running", total=summary.total, done=summary.done, summary=summary, error="")

    def check_cancel() -> None:
        if status.cancelled:
            raise RoarCancelled("the ROAR run was stopped; finished retrainings are saved")

    def publish(record: dict[str, Any]) -> None:
        s = summarize(record, dataset, settings)
        status.set(summary=s, done=s.done)

    def add_timings(record: dict[str, Any]) -> None:
        for name, seconds in timings.items():
            record.setdefault("timings", {})[name] = record.get("timings", {}).get(name, 0.0) + seconds

    try:
        status.set(phase="Training the base model (cached on disk after the first run)")
        t0 = time.perf_counter()
        base = trained_base_model(dataset, settings.recipe, settings.seed, device=device,
                                  should_stop=status.cancel_event.is_set)
        timings["base_model"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        base_accuracy = accuracy(base, dataset.test_x, dataset.test_y)
        timings["evaluation"] += time.perf_counter() - t0

        def describe(record: dict[str, Any]) -> None:
            record["base_accuracy"] = base_accuracy
            record["experiment"] = {"dataset": dataset.describe(), "dataset_key": dataset.key,
                                    "architecture": architecture_name(dataset, settings.recipe),
                                    "recipe": asdict(settings.recipe), "seed": settings.seed, "mode": settings.mode}
            record.setdefault("entries", {})
        publish(store.update(key, describe))
        bundle = small_cnn_bundle(dataset, base, settings.recipe, device=device)
        fill = dataset.channel_fill

        for method in settings.all_methods:
            saved = store.load(key).get("entries", {})
            missing = [(f, r) for f in settings.fractions for r in range(settings.repeats)
                       if entry_key(method, f, r) not in saved]
            if not missing:
                continue
            check_cancel()
            orders = store.load_orders(key, method)
            if orders is None:
                status.set(phase=f"{method.label}: attribution maps for {len(dataset.train_y) + len(dataset.test_y)} images",
                           phase_done=0, phase_total=len(dataset.train_y) + len(dataset.test_y))
                t0 = time.perf_counter()
                orders = _rank(bundle, dataset, method, rankers, settings.seed, status)
                timings["attribution"] += time.perf_counter() - t0
                store.save_orders(key, method, *orders)
            for fraction, repeat in missing:
                check_cancel()
                status.set(phase=f"{method.label}: retraining at {fraction:.0%} {'kept' if keep else 'removed'}"
                                 + (f" (repeat {repeat + 1}/{settings.repeats})" if settings.repeats > 1 else ""))
                t0 = time.perf_counter()
                train_x = degrade(dataset.train_x, orders[0], fraction, fill, keep)
                model = train_small_cnn(dataset, train_x, dataset.train_y, settings.recipe, settings.seed + repeat,
                                        device=device, should_stop=status.cancel_event.is_set)
                t1 = time.perf_counter()
                acc = accuracy(model, degrade(dataset.test_x, orders[1], fraction, fill, keep), dataset.test_y)
                t2 = time.perf_counter()
                timings["retraining"] += t1 - t0
                timings["evaluation"] += t2 - t1
                entry = {"method": method.ident, "fraction": fraction, "repeat": repeat, "accuracy": acc,
                         "seconds": round(t2 - t0, 3)}
                publish(store.update(key, _adding_entry(entry_key(method, fraction, repeat), entry)))
                with status.lock:
                    status.trainings_run += 1
                if status.on_retrained is not None:
                    status.on_retrained(status)
    except (RoarCancelled, TrainingStopped):
        publish(store.update(key, add_timings))
        status.set(state="cancelled", phase="Stopped; finished retrainings are saved")
        raise RoarCancelled("the ROAR run was stopped; finished retrainings are saved") from None
    except Exception as exc:
        store.update(key, add_timings)
        status.set(state="failed", phase="Failed", error=f"{type(exc).__name__}: {exc}")
        raise
    record = store.update(key, add_timings)
    summary = summarize(record, dataset, settings)
    summary = replace(summary, timings={**timings})  # this run's own split
    status.set(state="done", phase="Done", summary=summary, done=summary.done)
    return summary


def _adding_entry(name: str, entry: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A record change that stores one retraining's result under its name."""
    def change(record: dict[str, Any]) -> None:
        record.setdefault("entries", {})[name] = entry
    return change


def _rank(bundle: ModelBundle, dataset: LabelledImages, method: MethodSpec, rankers: Mapping[str, Ranker],
          seed: int, status: RoarStatus) -> tuple[np.ndarray, np.ndarray]:
    """Pixel orders for the train and test images under one ranking method."""
    offset = {"train": 0, "test": len(dataset.train_y)}
    orders = []
    for split, images in (("train", dataset.train_x), ("test", dataset.test_x)):
        def progress(done: int, count: int, base: int = offset[split]) -> None:
            status.set(phase_done=base + done)
            if status.cancelled:
                raise RoarCancelled("the ROAR run was stopped during attribution")
        if method.key == RANDOM:
            ranker = random_ranker(seed + (0 if split == "train" else 1))
        elif method.key in rankers:
            ranker = rankers[method.key]
        else:
            ranker = method_ranker(method, progress)
        maps = ranker(bundle, images)
        if maps.shape != (images.shape[0], *images.shape[-2:]):
            raise ValueError(f"{method.label} returned maps of shape {maps.shape}, expected {(images.shape[0], *images.shape[-2:])}")
        orders.append(pixel_order(maps, seed + (0 if split == "train" else 1)))
        status.set(phase_done=offset[split] + images.shape[0])
    return orders[0], orders[1]


def probe_bundle(dataset: LabelledImages, recipe: TrainRecipe = TrainRecipe()) -> ModelBundle:
    """An untrained SmallCNN bundle for this dataset: enough to ask the registry which
    methods apply (and with which parameters) before anything is trained."""
    return small_cnn_bundle(dataset, new_model(dataset, recipe, 0), recipe)


def available_methods(dataset: LabelledImages, recipe: TrainRecipe = TrainRecipe()) -> list[str]:
    """Registry methods that can rank pixels for the SmallCNN on this dataset."""
    bundle = probe_bundle(dataset, recipe)
    return [m.key for m in list_methods() if m.is_available(bundle)]
