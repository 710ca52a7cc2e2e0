"""ROAR / KAR (Hooker et al., NeurIPS 2019) as an analysis on the job runner.

Per ranking method: rank every train and test image's pixels once (stored), then per
fraction and repeat degrade the images and retrain the small CNN from scratch (one
stored entry per retraining). Entries live in a scope shared by every job of the same
experiment (dataset, architecture, recipe, seed, variant), so a run with other methods
reuses what an earlier run trained, a stopped or killed run resumes, and two
processes adding entries at once lose none (one file per entry).

Curves come out in the one metric shape (`Curves`): one unit per repeat, x = fraction
(ROAR starts at 0 with the unmodified model's accuracy).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from ..data.training import LabelledImages
from ..jobs.context import JobCancelled, JobContext
from ..methods.registry import MethodSpec, get_method
from ..metrics.base import Curves
from ..metrics.registry import method_passes
from ..metrics.roar.removal import degrade, method_ranker, pixel_order, random_ranker
from ..metrics.roar.settings import RANDOM, Ranker, RoarSettings, entry_key, experiment_key, ranking_label
from ..models.bundle import default_device
from ..models.small_cnn import (
    TrainingStopped, accuracy, architecture_name, small_cnn_bundle, torch_threads, train_small_cnn,
    trained_base_model, training_threads,
)
from .base import PLAN_SIZE, Analysis, register_analysis

log = logging.getLogger(__name__)

ROAR_PLAN_IMAGES = 5000  # the largest dataset a ROAR run plans for (the MNIST subset, train and test)
ROAR_PLAN_SIDE = 32  # and its largest image side

BASE_PART = "base"


@dataclass(frozen=True, eq=False)
class RoarInputs:
    """What ROAR runs on: the labelled images, the device, and optional extra rankers
    (name -> function; e.g. an oracle in tests) usable as method keys."""

    dataset: LabelledImages
    device: str = field(default_factory=lambda: str(default_device()))  # the CLI and the page alike
    rankers: Mapping[str, Ranker] = field(default_factory=dict)
    threads: int | None = None


def _is_accuracy(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def valid_base(record: Any) -> dict[str, Any] | None:
    """The stored base-model record when it is sound (an object with a text
    `architecture` and an `accuracy` in [0, 1]); None, with a log line, when it is damaged
    (it is then measured again, never read as it is)."""
    if record is None:
        return None
    if (isinstance(record, dict) and isinstance(record.get("architecture"), str)
            and _is_accuracy(record.get("accuracy"))):
        return record
    log.warning("ROAR base record is damaged (%s); it is skipped and measured again", type(record).__name__)
    return None


def entry_part(name: str) -> str:
    return "entry-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:24]


def _orders_part(method: MethodSpec) -> str:
    return "orders-" + hashlib.sha1(method.versioned_ident.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True, eq=False)
class RoarResult:
    """Accuracy curves per ranking (the random baseline included), the unmodified
    model's accuracy, and how many retrainings are done."""

    analysis: "RoarAnalysis"
    architecture: str
    base_accuracy: float | None
    curves: Mapping[str, Mapping[str, Curves]]
    done: int
    total: int
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def settings(self) -> RoarSettings:
        return self.analysis.settings

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.done >= self.total

    @property
    def metric_curves(self) -> Mapping[str, Curves]:
        return self.curves[self.settings.mode]

    @property
    def labels(self) -> dict[str, str]:
        return {m.ident: ranking_label(m) for m in self.settings.all_methods}

    def figure(self):
        from ..plots.curves import curves_figure

        fig = curves_figure(self.metric_curves, self.labels, baselines=(RANDOM,), x_scale=100.0)
        metric = self.settings.metric
        fig.update_xaxes(
            title=dict(text=f"% of pixels {'kept (KAR)' if self.settings.mode == 'kar' else 'removed (ROAR)'}")
        )
        fig.update_yaxes(range=[0, 1.02], rangemode="normal")
        if self.base_accuracy is not None:
            fig.add_hline(
                y=self.base_accuracy,
                line_dash="dot",
                line_color="black",
                annotation_text=f"unmodified model {self.base_accuracy:.3f}",
                annotation_position="bottom left",
            )
        fig.update_layout(title=dict(text=f"{metric.short_name} ({metric.direction}) · {self.analysis.dataset_name}"))
        return fig

    def table(self):
        from ..plots.curves import score_table

        return score_table(self.curves, self.labels, points=True)


@register_analysis
@dataclass(frozen=True)
class RoarAnalysis(Analysis):
    kind = "roar"
    pool = "long"

    dataset_key: str
    dataset_name: str
    settings: RoarSettings
    dataset_images: int = ROAR_PLAN_IMAGES  # train + test images, for the plan (the largest when unknown)
    dataset_side: int = ROAR_PLAN_SIDE

    @classmethod
    def of(cls, dataset: LabelledImages, settings: RoarSettings) -> "RoarAnalysis":
        return cls(dataset.key, dataset.describe(), settings, len(dataset.train_x) + len(dataset.test_x),
                   dataset.image_size)

    @property
    def title(self) -> str:
        s = self.settings
        return f"{s.mode.upper()} · {len(s.all_methods)} rankings × {len(s.fractions)} fractions on {self.dataset_name}"

    @property
    def experiment(self) -> str:
        s = self.settings
        return experiment_key(self.dataset_key, s)

    @property
    def total(self) -> int:
        s = self.settings
        return len(s.all_methods) * len(s.fractions) * s.repeats

    def planned_passes(self, size: int = PLAN_SIZE) -> float:
        """Each retraining's epochs over the dataset's images, and each ranking's maps of
        every image, in passes of a `size`-sided image (the unit every plan counts in):
        a pass of the small CNN on a 28 x 28 digit costs (28 / 224)^2 of a 224 x 224 one."""
        s = self.settings
        side = self.dataset_side if self.dataset_side > 0 else ROAR_PLAN_SIDE
        rankings = sum(method_passes(m, side) for m in s.methods if m.key != RANDOM)  # 1 for a custom ranker
        passes = self.total * s.recipe.epochs * self.dataset_images + rankings * self.dataset_images
        return passes * min(1.0, (side / size) ** 2)

    def _entries(self, scope) -> dict[str, dict[str, Any]]:
        return self._read_entries(scope)[0]

    def _read_entries(self, scope) -> tuple[dict[str, dict[str, Any]], int]:
        """The sound stored retrainings of these settings, and how many damaged ones were skipped."""
        s = self.settings
        wanted = {entry_key(m, f, r) for m in s.all_methods for f in s.fractions for r in range(s.repeats)}
        found, damaged = {}, 0
        for name in wanted:
            record = scope.get_json(entry_part(name))
            if isinstance(record, dict) and _is_accuracy(record.get("accuracy")):
                found[name] = record
            elif record is not None:
                damaged += 1
                log.warning("ROAR entry %s is damaged; it is skipped and retrained", name)
        return found, damaged

    def damaged_records(self, ctx: JobContext) -> int:
        """How many stored records these settings would read (the experiment's base model,
        its retrainings) are damaged: each is skipped, and the next run measures it again."""
        scope = ctx.shared(f"roar-{self.experiment}")
        base = scope.get_json(BASE_PART)
        return int(base is not None and valid_base(base) is None) + self._read_entries(scope)[1]

    def _result(
        self, architecture: str, base: float | None, entries: Mapping[str, dict], timings: Mapping[str, float]
    ) -> RoarResult:
        s = self.settings
        metric = s.metric
        x = np.asarray(s.fractions, dtype=float)
        if s.mode == "roar":
            x = np.concatenate([[0.0], x])
        curves = {}
        for method in s.all_methods:
            rows = []
            for r in range(s.repeats):
                accs = [
                    entries[k]["accuracy"] if (k := entry_key(method, f, r)) in entries else np.nan for f in s.fractions
                ]
                rows.append(([np.nan if base is None else base] if s.mode == "roar" else []) + accs)
            curves[method.ident] = Curves(metric, method.ident, x, np.array(rows, dtype=float))
        return RoarResult(self, architecture, base, {metric.key: curves}, len(entries), self.total, dict(timings))

    def stored(self, ctx: JobContext) -> RoarResult | None:
        """What is stored for this experiment and these settings so far (None before the
        base model was trained): the page shows it even when no job runs."""
        base = valid_base(ctx.shared(f"roar-{self.experiment}").get_json(BASE_PART))
        if base is None:
            return None
        entries = self._entries(ctx.shared(f"roar-{self.experiment}"))
        return self._result(base["architecture"], base["accuracy"], entries, ctx.parts.get_json("timings") or {})

    def load(self, ctx: JobContext) -> RoarResult | None:
        result = self.stored(ctx)
        return result if result is not None and result.complete else None

    def run(self, inputs: RoarInputs, ctx: JobContext) -> Iterator[RoarResult]:
        if inputs.dataset.key != self.dataset_key:
            raise ValueError("the dataset given is not the one these settings name")
        with torch_threads(inputs.threads or training_threads()):
            yield from self._run(inputs, ctx)

    def _run(self, inputs: RoarInputs, ctx: JobContext) -> Iterator[RoarResult]:
        s, dataset = self.settings, inputs.dataset
        for method in s.all_methods:  # unknown names fail before any work
            if method.key != RANDOM and method.key not in inputs.rankers:
                get_method(method.key).resolve_params(dict(method.params))
        scope = ctx.shared(f"roar-{self.experiment}")
        architecture = architecture_name(dataset, s.recipe)
        timings = {"base_model": 0.0, "attribution": 0.0, "retraining": 0.0, "evaluation": 0.0}
        entries = self._entries(scope)
        ctx.plan(self.total, "retrainings")
        ctx.reused(len(entries))
        base = valid_base(scope.get_json(BASE_PART))  # a damaged one is measured again
        yield self._result(architecture, None if base is None else base["accuracy"], entries, timings)
        try:
            ctx.working_on("training the base model (cached on disk after the first run)")
            t0 = time.perf_counter()
            model = trained_base_model(dataset, s.recipe, s.seed, device=inputs.device, should_stop=ctx.should_stop)
            timings["base_model"] += time.perf_counter() - t0
            if base is None:
                base = {"accuracy": accuracy(model, dataset.test_x, dataset.test_y), "architecture": architecture,
                        "dataset": dataset.describe()}
                scope.put_json(BASE_PART, base)
            yield self._result(architecture, base["accuracy"], entries, timings)
            bundle = small_cnn_bundle(dataset, model, s.recipe, device=inputs.device)
            keep = s.mode == "kar"
            for method in s.all_methods:
                missing = [
                    (f, r) for f in s.fractions for r in range(s.repeats) if entry_key(method, f, r) not in entries
                ]
                if not missing:
                    continue
                orders = self._orders(scope, bundle, dataset, method, inputs.rankers, ctx, timings)
                for fraction, repeat in missing:
                    ctx.working_on(
                        f"{ranking_label(method)}: retraining at {fraction:.0%} {'kept' if keep else 'removed'}"
                        + (f" (repeat {repeat + 1}/{s.repeats})" if s.repeats > 1 else "")
                    )
                    t0 = time.perf_counter()
                    train_x = degrade(dataset.train_x, orders[0], fraction, dataset.channel_fill, keep)
                    retrained = train_small_cnn(dataset, train_x, dataset.train_y, s.recipe, s.seed + repeat,
                                                device=inputs.device, should_stop=ctx.should_stop)
                    t1 = time.perf_counter()
                    acc = accuracy(
                        retrained,
                        degrade(dataset.test_x, orders[1], fraction, dataset.channel_fill, keep),
                        dataset.test_y,
                    )
                    t2 = time.perf_counter()
                    timings["retraining"] += t1 - t0
                    timings["evaluation"] += t2 - t1
                    name = entry_key(method, fraction, repeat)
                    entries[name] = {"method": method.ident, "fraction": fraction, "repeat": repeat, "accuracy": acc,
                                     "seconds": round(t2 - t0, 3)}
                    scope.put_json(entry_part(name), entries[name])
                    ctx.advance(1)
                    yield self._result(architecture, base["accuracy"], entries, timings)
        except TrainingStopped:
            raise JobCancelled("the ROAR run was stopped; finished retrainings are saved") from None
        ctx.parts.put_json("timings", timings)
        yield self._result(architecture, base["accuracy"], entries, timings)

    def _orders(self, scope, bundle, dataset: LabelledImages, method: MethodSpec, rankers: Mapping[str, Ranker],
                ctx: JobContext, timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Pixel orders of the train and test images under one ranking (stored once)."""
        stored = scope.get_arrays(_orders_part(method))
        if stored is not None and {"train", "test"} <= set(stored):
            return stored["train"], stored["test"]
        seed = self.settings.seed
        t0 = time.perf_counter()
        orders = []
        for offset, (split, images) in enumerate((("train", dataset.train_x), ("test", dataset.test_x))):
            ctx.working_on(f"{ranking_label(method)}: attribution maps of the {split} images ({images.shape[0]})")
            if method.key == RANDOM:
                ranker = random_ranker(seed + offset)
            elif method.key in rankers:
                ranker = rankers[method.key]
            else:
                ranker = method_ranker(method, lambda done, total: ctx.check())
            maps = ranker(bundle, images)
            if maps.shape != (images.shape[0], *images.shape[-2:]):
                raise ValueError(f"{ranking_label(method)} returned maps of shape {maps.shape}, "
                                 f"expected {(images.shape[0], *images.shape[-2:])}")
            orders.append(pixel_order(maps, seed + offset))
        timings["attribution"] += time.perf_counter() - t0
        scope.put_arrays(_orders_part(method), {"train": orders[0], "test": orders[1]})
        return orders[0], orders[1]
