"""What fixes a ROAR run: the ranking methods, fractions, repeats, seed, variant and
training recipe, and the keys that name its results on disk."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from ...methods.registry import MethodSpec
from ...models.bundle import ModelBundle
from ...models.small_cnn import TrainRecipe
from ..base import MetricInfo

RANDOM = "random"
# The bounds of a run's settings: the ROAR page's widgets and `python -m reports build --roar-*` both use these.
EPOCHS_RANGE = (1, 50)
REPEATS_RANGE = (1, 10)
SEED_RANGE = (0, 2**31 - 1)
MODES = ("roar", "kar")
DEFAULT_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
DEFAULT_METHODS = ("saliency", "integrated_gradients", "gradcam", "smoothgrad_sq")  # SG-SQ: Hooker et al.'s best

# A ranker gives one score map (N, H, W) per image; larger |score| = more important.
Ranker = Callable[[ModelBundle, torch.Tensor], np.ndarray]


_HOOKER = (
    "Hooker, Erhan, Kindermans, Kim. A Benchmark for Interpretability Methods in Deep Neural Networks. NeurIPS 2019."
)
METRICS = {
    "roar": MetricInfo(
        key="roar",
        name="ROAR AUC",
        higher_is_better=False,
        x_label="fraction of pixels removed",
        y_label="test accuracy after retraining",
        description="Area under test accuracy vs fraction of pixels removed (0 = base model); lower means the ranking "
                    "found the pixels the task needs.",
        reference=_HOOKER,
        score="aggregate_auc",
        unit="repeat",
    ),
    "kar": MetricInfo(
        key="kar",
        name="KAR AUC",
        higher_is_better=True,
        x_label="fraction of pixels kept",
        y_label="test accuracy after retraining",
        description="Area under test accuracy vs fraction of pixels kept (the rest removed); higher means the kept "
                    "pixels suffice.",
        reference=_HOOKER,
        score="aggregate_auc",
        unit="repeat",
    ),
}


@dataclass(frozen=True)
class RoarSettings:
    """Everything that fixes a ROAR run besides the dataset. The random baseline is
    always run, whether listed or not."""

    methods: tuple[MethodSpec, ...]
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    repeats: int = 1
    seed: int = 0
    mode: str = "roar"
    recipe: TrainRecipe = TrainRecipe()

    def __post_init__(self) -> None:
        if not self.fractions:
            raise ValueError("choose at least one fraction")
        if any(not 0 < f < 1 for f in self.fractions):
            raise ValueError("fractions must lie strictly between 0 and 1 (0 % and 100 % are not informative)")
        object.__setattr__(self, "fractions", tuple(sorted({round(float(f), 4) for f in self.fractions})))
        if not REPEATS_RANGE[0] <= self.repeats <= REPEATS_RANGE[1]:
            raise ValueError(f"repeats must lie between {REPEATS_RANGE[0]} and {REPEATS_RANGE[1]}, not {self.repeats}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")

    def check_bounds(self) -> None:
        """ValueError outside the bounds the ROAR page offers (epochs, repeats, seed): what
        a visitor or `python -m reports build` may ask for. The library itself accepts any
        recipe (a test may train for long on purpose)."""
        for name, value, (low, high) in (("repeats", self.repeats, REPEATS_RANGE), ("seed", self.seed, SEED_RANGE),
                                         ("epochs per retraining", self.recipe.epochs, EPOCHS_RANGE)):
            if not low <= value <= high:
                raise ValueError(f"{name} must lie between {low} and {high}, not {value}")

    @property
    def all_methods(self) -> tuple[MethodSpec, ...]:
        return tuple(m for m in self.methods if m.key != RANDOM) + (MethodSpec(RANDOM),)

    @property
    def metric(self) -> MetricInfo:
        return METRICS[self.mode]


def ranking_label(method: MethodSpec) -> str:
    """How a ranking is named in results: the method's label, or the random baseline's."""
    return "Random (baseline)" if method.key == RANDOM else method.label


def parse_percentages(text: str) -> tuple[float, ...]:
    """'10, 30, 50' -> (0.1, 0.3, 0.5); clear errors for anything else."""
    parts = [p.strip().rstrip("%") for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("enter at least one percentage, e.g. 10, 30, 50, 70, 90")
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ValueError(f"{p!r} is not a number") from None
        if not 0 < v < 100:
            raise ValueError(f"{v:g} % is outside (0, 100)")
        values.append(v / 100)
    return tuple(sorted(set(values)))


def experiment_key(dataset_key: str, settings: RoarSettings) -> str:
    """Names an experiment, whose retrainings any run of it shares: the dataset's
    content, the recipe (which fixes the architecture for that dataset), seed and variant."""
    spec = {"dataset": dataset_key, "recipe": asdict(settings.recipe), "seed": settings.seed, "mode": settings.mode}
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def entry_key(method: MethodSpec, fraction: float, repeat: int) -> str:
    """Names one retraining: the ranking (with its method's version), fraction and repeat."""
    return f"{method.versioned_ident}|{fraction:.4f}|{repeat}"
