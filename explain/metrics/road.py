"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, ICML 2022).

Pixels are ranked by attribution (signed; ties keep raster order). At each of `steps`
percentages p_k = (2k + 1) / (2 steps) (Quantus's 1 %, 3 %, ..., 99 % for 50 steps) the
first floor(p_k x H x W) pixels of the ranking are removed and replaced by noisy linear
imputation (each removed pixel the weighted mean of its 8 neighbours, plus Gaussian
noise of std `noise` in the model's input units; `substrates.remove_pixels`), or any
other substrate. The curve is, per image, 1 while the model still predicts the
explained class and 0 once it does not, against the fraction removed; averaged over
images it is Quantus's per-percentage accuracy. MoRF removes the most relevant first
(lower area is better), LeRF the least relevant first (higher area is better).

Against Quantus 0.6.0's `ROAD` (MoRF only): the same percentages, imputation, noise draws
(NumPy's legacy stream seeded with `seed`, drawn percentage by percentage, image by
image, as Quantus's loop; equal for batches of up to Quantus's 64 images) and accuracy,
with the explained class as the label. Quantus's ROAD fails on colour images with
per-pixel maps (it ranks channel values but imputes pixels: an IndexError); here every
channel of a removed pixel is imputed. Why in-house: Quantus imputes one image at a
time and runs one model pass per percentage for its batch; here every (order,
percentage, image) job is built chunk by chunk, its imputations solved together, and
sent through the model in batches of `forward_batch_size`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..methods.registry import Param
from .base import Curves, MetricInfo
from .perturbation import TargetOutputs, pixel_order, ranks_of
from .registry import FAITHFULNESS_PAGE, Metric, MetricInput, Strip, register_metric
from .substrates import LINEAR, ROAD_SUBSTRATE_HELP, ROAD_SUBSTRATES, remove_pixels

ROAD_REFERENCE = ("Rong, Leemann, Borisov, Kasneci, Kasneci. A consistent and efficient evaluation strategy for "
                  "attribution methods (ROAD). ICML 2022.")
ROAD_MORF = MetricInfo(
    key="road_morf",
    name="ROAD MoRF AUC",
    higher_is_better=False,
    x_label="fraction of pixels removed (most relevant first)",
    y_label="share still predicted as the explained class",
    description="Most relevant pixels first replaced by noisy linear imputation; a faithful map makes the model "
                "lose its prediction early.",
    reference=ROAD_REFERENCE,
)
ROAD_LERF = MetricInfo(
    key="road_lerf",
    name="ROAD LeRF AUC",
    higher_is_better=True,
    x_label="fraction of pixels removed (least relevant first)",
    y_label="share still predicted as the explained class",
    description="Least relevant pixels first replaced by noisy linear imputation; a faithful map keeps the "
                "prediction long.",
    reference=ROAD_REFERENCE,
)
ORDERS = (ROAD_MORF, ROAD_LERF)


def road_fractions(steps: int) -> np.ndarray:
    """The `steps` percentages removed, as fractions: (2k + 1) / (2 steps)."""
    return (2 * np.arange(steps) + 1) / (2 * steps)


def removed_counts(pixels: int, steps: int) -> np.ndarray:
    """Pixels removed at each percentage: floor(p_k x pixels), Quantus's int(size * p / 100)."""
    return (2 * np.arange(steps) + 1) * pixels // (2 * steps)


def order_ranks(maps: np.ndarray) -> np.ndarray:
    """(2, N, H*W): each pixel's place in the MoRF and the LeRF order."""
    return np.stack([ranks_of(pixel_order(maps, descending=descending, absolute=False))
                     for descending in (True, False)])


def road_curves(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    """Per image, 1.0 while the explained class stays the top class, at each percentage,
    for the MoRF and the LeRF order."""
    steps, substrate = int(params["steps"]), str(params["substrate"])
    n, _, h, w = data.images.shape
    outputs = TargetOutputs(data, 2 * n * steps)
    device = outputs.device
    ranks = torch.as_tensor(order_ranks(data.maps), device=device)
    counts = torch.as_tensor(removed_counts(h * w, steps), device=device)
    rng = np.random.RandomState(int(params["seed"]))
    bundle = data.bundle

    def build(jobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # job = (order, step, image), in that order: Quantus's draws, step by step, image by image
        image, step, order = jobs % n, (jobs // n) % steps, jobs // (n * steps)
        rank = ranks[order, image]
        removed = (rank < counts[step, None]).view(-1, h, w)
        return remove_pixels(outputs.x[image], removed, substrate, bundle.mean, bundle.std,
                             noise=float(params["noise"]), rng=rng, order=rank), image

    kept = outputs.of_jobs(2 * n * steps, build, "top1").numpy().reshape(2, steps, n)
    x = road_fractions(steps)
    return {info.key: Curves(info, data.method.ident, x, kept[o].T) for o, info in enumerate(ORDERS)}


STRIP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


def road_strip(data: MetricInput, params: Mapping[str, Any], index: int) -> Strip:
    """Image `index` after removing a few fractions of its pixels, MoRF (top row) and
    LeRF (bottom row), with the probability of the explained class."""
    bundle = data.bundle
    x = data.images[index:index + 1].to(bundle.device, torch.float32)
    _, _, h, w = x.shape
    ranks = torch.as_tensor(order_ranks(data.maps[index:index + 1])[:, 0], device=bundle.device)
    rng = np.random.RandomState(int(params["seed"]))
    rows = []
    for rank in ranks:
        for fraction in STRIP_FRACTIONS:
            removed = (rank < int(fraction * h * w)).view(1, h, w)
            rows.append(remove_pixels(x, removed, str(params["substrate"]), bundle.mean, bundle.std,
                                      noise=float(params["noise"]), rng=rng, order=rank[None])[0])
    batch = torch.stack(rows)
    target = int(data.targets[index])
    probs = bundle.probabilities(batch)
    top = probs.argmax(dim=1)
    labels = [f"{kind} {fraction:.0%}" for kind in ("MoRF", "LeRF") for fraction in STRIP_FRACTIONS]
    captions = tuple(f"{label} · p={float(p[target]):.3f}{'' if int(t) == target else ' ✗'}"
                     for label, p, t in zip(labels, probs, top, strict=True))
    return Strip(bundle.to_display(batch), captions,
                 note=f"p = probability of class {target}: {bundle.class_names[target]}; ✗: no longer the top class.")


register_metric(Metric(
    key="road",
    label="ROAD",
    scores=ORDERS,
    compute=road_curves,
    description="Pixels removed most (MoRF) or least (LeRF) relevant first and replaced by noisy linear imputation "
                "from their neighbours (no telltale fill colour); y = share of images still predicted as the "
                "explained class.",
    params=(
        Param("substrate", "Removed pixels become", LINEAR, choices=ROAD_SUBSTRATES, help=ROAD_SUBSTRATE_HELP),
        Param("steps", "Percentages", 10, 2, 100, 1,
              help="Percentages removed: (2k+1)/(2 x this), e.g. 1 %, 3 %, ..., 99 % for 50 (Quantus's)"),
        Param("noise", "Imputation noise (std, input units)", 0.01, 0.0, 1.0, 0.005,
              help="Gaussian noise added to the imputed values (ROAD's and Quantus's 0.01)"),
        Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Seeds the imputation noise"),
    ),
    passes=lambda params, n: 2 * n * int(params["steps"]),
    detail=road_strip,
    page=FAITHFULNESS_PAGE,
))
