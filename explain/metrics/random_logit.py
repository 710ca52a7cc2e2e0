"""Random-logit check (Sixt, Granz & Landgraf, ICML 2020, "When explanations lie"; the
`RandomLogit` metric of Quantus): the map of the explained class against the map, by the
same method on the same image, of a class drawn uniformly from the other classes. A map
that explains the class must differ between the two; class-insensitive maps (Eigen-CAM,
attention rollout, and in their paper most modified-backprop methods) stay alike.

The other class of each image is drawn from a generator seeded by (seed, the image's
content digest), so it does not depend on which images share the run (Quantus reseeds
NumPy's global generator instead). One value per image per similarity
(`similarity.SIMILARITIES`): lower is better.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..methods.registry import Param, ProgressFn, attribute, get_method
from .base import Curves, MetricInfo
from .randomisation import SANITY_PAGE
from .registry import Metric, MetricInput, register_metric
from .similarity import SIMILARITIES

SIXT = "Sixt, Granz, Landgraf. When explanations lie: why many modified BP attributions fail. ICML 2020."

INFOS = tuple(MetricInfo(
    key=f"random_logit_{s.key}",
    name=f"Random logit: {s.label}",
    higher_is_better=False,
    x_label="",
    y_label=f"{s.label} to another class's map",
    description=f"{s.description.capitalize()} between the map of the explained class and the map of a random other "
                "class. A map that explains the class differs (lower is better).",
    reference=SIXT,
    score="mean_value",
) for s in SIMILARITIES)


def other_classes(targets: Sequence[int], num_classes: int, seed: int, digests: Sequence[str] = ()) -> list[int]:
    """For each image a class drawn uniformly from the classes other than its target,
    from a generator seeded by (seed, the image's digest, or its index without one)."""
    if num_classes < 2:
        raise ValueError("the random-logit check needs a model with at least two classes")
    out = []
    for i, target in enumerate(targets):
        name = (
            int.from_bytes(digests[i].encode("utf-8"), "big") if i < len(digests) else i
        )  # any length: SeedSequence takes it
        draw = int(np.random.default_rng([seed, name]).integers(num_classes - 1))
        out.append(draw + (draw >= int(target)))  # skip the target: uniform over the others
    return out


def scaled_progress(progress: ProgressFn, factor: int) -> ProgressFn:
    """`progress` counting `factor` passes for each unit done."""
    return lambda done, total: progress(done * factor, total * factor)


def random_logit_values(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    get_method(data.method.key)  # the maps of the other class come from the method itself
    targets = data.targets.tolist()
    others = other_classes(targets, data.bundle.num_classes, int(params["seed"]), data.digests)
    per_map = data.passes_per_map
    progress = None if data.progress is None else scaled_progress(data.progress, per_map)
    maps = attribute(data.bundle, data.images, data.method.key, others, progress=progress, **data.method.resolved)
    out = {}
    for s, info in zip(SIMILARITIES, INFOS, strict=True):
        values = np.array([[s.compute(data.maps[i], maps[i])] for i in range(len(targets))])
        out[info.key] = Curves(info, data.method.ident, np.zeros(1), values, extra={"other classes": others})
    return out


register_metric(Metric(
    key="random_logit",
    label="Random logit",
    scores=INFOS,
    compute=random_logit_values,
    description="Each image's map is recomputed for a class drawn uniformly from the other classes (seeded); "
                "y = its similarity to the map of the explained class. A map that explains the class changes.",
    params=(Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Seeds the other class drawn for each image"),),
    passes=lambda params, n: 0,
    maps_per_image=lambda params: 1,
    page=SANITY_PAGE,
))
