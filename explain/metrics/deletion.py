"""Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018).

Pixels are ranked by attribution value, highest first (signed values, as RISE does;
ties keep raster order). Deletion replaces the top-ranked pixels of the image with a
substrate step by step; insertion starts from a blurred copy and puts the original
pixels back in the same order. The curve is the softmax probability of the explained
class against the fraction of pixels changed, its score the trapezoid area over [0, 1].

Every perturbed image of every step, image and method is built on the fly, chunk by
chunk of `batching.forward_batch_size`, on the model's device, from one rank map per image and
method: building a chunk is a single `torch.where`, so the cost is that of the
forward passes. The curves' end points do not depend on the map (nothing or
everything changed: the photo, its blurred copy, the substrate), so they are computed
once per image for every method (once in all for the constant zero substrate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..methods.registry import resolve_targets
from ..models.bundle import ModelBundle
from ..methods.registry import Param
from .batching import forward_batch_size
from .base import Curves, MetricInfo
from .registry import Metric, MetricInput, Strip, register_metric
from .substrates import (ALL_SUBSTRATE_HELP, ALL_SUBSTRATES, CONSTANT_SUBSTRATES, LINEAR, LINEAR_NOISE, NOISE_SEED,
                         blur, make_substrate, remove_pixels)

ProgressFn = Callable[[int, int], None]

DEFAULT_STEPS = 32

DELETION = MetricInfo(
    key="deletion",
    name="Deletion AUC",
    higher_is_better=False,
    x_label="fraction of pixels removed",
    y_label="probability of the explained class",
    description="Most relevant pixels first replaced by the substrate; a faithful map makes the probability drop fast.",
    reference="Petsiuk, Das, Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. BMVC 2018.",
)
INSERTION = MetricInfo(
    key="insertion",
    name="Insertion AUC",
    higher_is_better=True,
    x_label="fraction of pixels inserted",
    y_label="probability of the explained class",
    description="Most relevant pixels first put back into a blurred image; a faithful map makes the probability rise "
                "fast.",
    reference=DELETION.reference,
)


@dataclass(frozen=True, eq=False)
class DeletionInsertionResult:
    """Curves per method (keys as in the `maps` given), with the settings that made them."""

    deletion: dict[str, Curves]
    insertion: dict[str, Curves]
    targets: np.ndarray
    substrate: str
    steps: int

    @property
    def methods(self) -> list[str]:
        return list(self.deletion)


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps -> (N, H*W) rank of each pixel, 0 = highest value (ties: raster order)."""
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def step_counts(num_pixels: int, steps: int) -> np.ndarray:
    """Pixels changed after each of the `steps` steps, 0 .. num_pixels (steps + 1 values)."""
    k = np.arange(steps + 1, dtype=np.int64)
    return (k * num_pixels + steps // 2) // steps


def deletion_insertion(
    bundle: ModelBundle,
    images: torch.Tensor,
    maps: Mapping[str, np.ndarray],
    target: int | Sequence[int] | None = None,
    *,
    substrate: str = "zero",
    steps: int = DEFAULT_STEPS,
    progress: ProgressFn | None = None,
) -> DeletionInsertionResult:
    """Deletion and insertion curves for a normalised batch `images` (N, C, H, W) and,
    per method, its maps (N, H, W). `target` as in `explain.attribute` (None: top-1).
    `progress(done, total)` counts forward passes."""
    if images.dim() != 4:
        raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(images.shape)}")
    if substrate not in ALL_SUBSTRATES:
        raise ValueError(f"unknown substrate {substrate!r}; choose one of {ALL_SUBSTRATES}")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    n, _, h, w = images.shape
    for key, m in maps.items():
        if tuple(np.shape(m)) != (n, h, w):
            raise ValueError(f"maps of {key!r} have shape {tuple(np.shape(m))}, expected {(n, h, w)}")
    targets = resolve_targets(bundle, images, target)
    method_keys = list(maps)
    device = bundle.device

    x = images.to(device, torch.float32)
    # Per kind (0 = deletion, 1 = insertion): the image pixels start from, and what ranked pixels become.
    starts = torch.stack([x, blur(x)])
    fills = torch.stack([make_substrate(x, substrate, bundle.mean, bundle.std), x])
    ranks = (
        torch.stack(
            [pixel_ranks(torch.tensor(np.asarray(maps[k], dtype=np.float32), device=device)) for k in method_keys]
        )
        if method_keys
        else torch.empty(0, n, h * w, dtype=torch.long, device=device)
    )
    counts = torch.as_tensor(step_counts(h * w, steps), device=device)

    num_points = steps + 1
    target_dev = targets.to(device)
    inner = steps - 1  # steps 1 .. steps-1 depend on the map; the end points do not
    jobs_total = 2 * len(method_keys) * n * inner
    shared_substrate = substrate in CONSTANT_SUBSTRATES  # one constant image, whatever the photo
    total = (2 * n + (1 if shared_substrate else 0 if substrate == "blur" else n) if method_keys else 0) + jobs_total
    done = 0

    def probabilities(batch: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        nonlocal done
        logits = bundle.model(batch).float()
        done += len(batch)
        if progress is not None:
            progress(done, total)
        return logits.softmax(dim=1).gather(1, target_dev[rows, None])[:, 0].cpu()

    batch_size = forward_batch_size(bundle, x.shape[1:])
    rng = np.random.RandomState(NOISE_SEED)
    curves = torch.empty(2, len(method_keys), n, num_points, dtype=torch.float64)
    with torch.inference_mode(), bundle.lock:
        if method_keys:
            # The end points, once per image for every method: nothing changed (deletion:
            # the photo; insertion: its blurred copy) and everything changed (deletion: the
            # substrate; insertion: the photo again).
            everyone = torch.arange(n, device=device).split(batch_size)

            def of_every_image(batch: torch.Tensor) -> torch.Tensor:
                return torch.cat(
                    [probabilities(chunk, rows) for chunk, rows in zip(batch.split(batch_size), everyone, strict=True)]
                )

            original, blurred = of_every_image(x), of_every_image(starts[1])
            if substrate == "blur":
                removed = blurred
            elif shared_substrate:
                logits = bundle.model(fills[0, :1]).float().softmax(dim=1)[0]
                done += 1
                removed = logits[target_dev].cpu()
            else:
                removed = of_every_image(fills[0])
            curves[0, :, :, 0], curves[0, :, :, -1] = original, removed
            curves[1, :, :, 0], curves[1, :, :, -1] = blurred, original
        # One job per (kind, method, image, inner step), in that order, so results reshape directly.
        inner_probs = torch.empty(jobs_total)
        for start in range(0, jobs_total, batch_size):
            job = torch.arange(start, min(start + batch_size, jobs_total), device=device)
            step = job % inner + 1
            image = (job // inner) % n
            method = (job // (inner * n)) % len(method_keys)
            kind = job // (inner * n * len(method_keys))
            changed = (ranks[method, image] < counts[step, None]).view(-1, 1, h, w)
            batch = torch.where(changed, fills[kind, image], starts[kind, image])
            if substrate == LINEAR and bool((kind == 0).any()):  # deletion's removed pixels imputed from the rest
                rows = kind == 0
                batch[rows] = remove_pixels(x[image[rows]], changed[rows, 0], LINEAR, noise=LINEAR_NOISE, rng=rng,
                                            order=ranks[method[rows], image[rows]])
            inner_probs[start : start + len(job)] = probabilities(batch, image)
        if inner > 0 and method_keys:
            curves[:, :, :, 1:-1] = inner_probs.double().reshape(2, len(method_keys), n, inner)

    values = curves.numpy()
    fractions = step_counts(h * w, steps) / (h * w)
    result: dict[str, dict[str, Curves]] = {"deletion": {}, "insertion": {}}
    for which, info in enumerate((DELETION, INSERTION)):
        for j, key in enumerate(method_keys):
            result[info.key][key] = Curves(info, key, fractions, values[which, j])
    return DeletionInsertionResult(
        deletion=result["deletion"],
        insertion=result["insertion"],
        targets=targets.numpy(),
        substrate=substrate,
        steps=steps,
    )


STRIP_FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.6)


def _compute(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    result = deletion_insertion(
        data.bundle, data.images, {data.method.ident: data.maps}, data.targets.tolist(),
        substrate=params["substrate"], steps=params["steps"], progress=data.progress,
    )
    return {"deletion": result.deletion[data.method.ident], "insertion": result.insertion[data.method.ident]}


def _strip(data: MetricInput, params: Mapping[str, Any], index: int) -> Strip:
    """Image `index` after deleting (top row) and inserting (bottom row) the top pixels,
    at a few fractions, with the probability of the explained class."""
    bundle = data.bundle
    x = data.images[index : index + 1].to(bundle.device, torch.float32)
    ranks = pixel_ranks(torch.as_tensor(np.asarray(data.maps[index], dtype=np.float32), device=bundle.device)[None])[0]
    _, _, h, w = x.shape
    rows = []
    substrate = params["substrate"]
    rng = np.random.RandomState(NOISE_SEED)
    for start, fill in ((x[0], make_substrate(x, substrate, bundle.mean, bundle.std)[0]), (blur(x)[0], x[0])):
        for fraction in STRIP_FRACTIONS:
            changed = (ranks < int(round(fraction * h * w))).view(1, h, w)
            if substrate == LINEAR and start is x[0]:
                rows.append(remove_pixels(x, changed, LINEAR, noise=LINEAR_NOISE, rng=rng, order=ranks[None])[0])
            else:
                rows.append(torch.where(changed, fill, start))
    batch = torch.stack(rows)
    target = int(data.targets[index])
    probs = bundle.probabilities(batch)[:, target].numpy()
    labels = [f"{kind} {fraction:.0%}" for kind in ("deleted", "inserted") for fraction in STRIP_FRACTIONS]
    captions = tuple(f"{label} · p={p:.3f}" for label, p in zip(labels, probs, strict=True))
    return Strip(
        bundle.to_display(batch), captions, note=f"p = probability of class {target}: {bundle.class_names[target]}."
    )


register_metric(
    Metric(
        key="deletion_insertion",
        label="Deletion & insertion",
        scores=(DELETION, INSERTION),
        compute=_compute,
        description="Pixels are ranked by attribution. Deletion replaces the most relevant first with a substrate; "
        "insertion starts from a blurred image and puts them back. y = probability of the explained class.",
        params=(
            Param("substrate", "Deletion substrate", "zero", choices=ALL_SUBSTRATES, help=ALL_SUBSTRATE_HELP),
            Param(
                "steps",
                "Steps",
                DEFAULT_STEPS,
                4,
                128,
                1,
                help="Removal/insertion steps (forward passes per curve - 1)",
            ),
        ),
        passes=lambda params, n: 2 * n * (int(params["steps"]) + 1),
        detail=_strip,
    )
)
