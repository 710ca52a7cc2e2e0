"""Faithfulness correlation (Bhatt, Weller, Moura, IJCAI 2020) and faithfulness estimate
(Alvarez-Melis, Jaakkola, NeurIPS 2018): does removing pixels cost the explained class's
logit what the map says they are worth? Both are one Pearson correlation per image, between
the attribution sum of a removed set of pixels and the drop of the logit it causes
(logit of the image minus logit of the perturbed image); higher is better.

- Faithfulness correlation: `runs` random subsets, each of `subset_fraction` of the
  pixels, drawn without replacement (NumPy's legacy stream seeded with `seed`, run by run,
  image by image: Quantus's `np.random.choice` draws).
- Faithfulness estimate: the pixels ranked by attribution (signed, most relevant first,
  ties in raster order) and cut into `steps` consecutive groups, each removed alone.

Removed pixels become the substrate (default black: pixel value 0; Quantus's "black" is
the image's smallest input value, the same for photos that reach black). Quantus 0.6.0's
`FaithfulnessCorrelation` and `FaithfulnessEstimate` give the same values on the same
model, images and maps, with its `subset_size` = the subset's pixels on one-channel
images and its `features_in_step` = C x pixels per group (`perturbation` says why a
feature is a pixel here); Quantus draws channel values on colour images, here whole
pixels. Why in-house: Quantus runs one model pass per run or group for its batch; here
every (run, image) job is sent through the model in batches of `forward_batch_size`,
each batch built by one `torch.where`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..methods.registry import Param
from .base import Curves
from .map_scores import value_info
from .perturbation import TargetOutputs, group_bounds, pearson_rows, pixel_order, ranks_of, value_curves
from .registry import FAITHFULNESS_PAGE, Metric, MetricInput, register_metric
from .substrates import SUBSTRATE_HELP, SUBSTRATES, make_substrate

UNDEFINED = "the correlation is undefined (the map's sums or the logit drops are constant)"

FAITHFULNESS_CORRELATION = value_info(
    "faithfulness_correlation", "Faithfulness correlation", True,
    "Pearson correlation, over random pixel subsets, between a subset's attribution sum and the logit drop its "
    "removal causes.",
    "Bhatt, Weller, Moura. Evaluating and aggregating feature-based model explanations. IJCAI 2020.")
FAITHFULNESS_ESTIMATE = value_info(
    "faithfulness_estimate", "Faithfulness estimate", True,
    "Pearson correlation, over groups of pixels in the map's order, between a group's attribution sum and the logit "
    "drop its removal causes.",
    "Alvarez-Melis, Jaakkola. Towards robust interpretability with self-explaining neural networks. NeurIPS 2018.")


def subset_pixels(fraction: float, pixels: int) -> int:
    """Pixels per random subset: `fraction` of them, at least 1, fewer than all."""
    return max(1, min(pixels - 1, int(round(fraction * pixels))))


def random_subsets(runs: int, n: int, pixels: int, size: int, seed: int) -> np.ndarray:
    """(runs, N, size) pixel indices, each row drawn without replacement, run by run and
    image by image from NumPy's legacy stream seeded with `seed` (Quantus's draws)."""
    rng = np.random.RandomState(seed)
    return np.array([[rng.choice(pixels, size, replace=False) for _ in range(n)] for _ in range(runs)])


def logit_drops(data: MetricInput, sets: int, removed_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                substrate: str) -> np.ndarray:
    """(sets, N) logit of each image minus its logit with the pixels of each set removed
    (replaced by `substrate`); `removed_of(set, image)` is the (B, H, W) mask of the given
    (set, image) jobs. (sets + 1) x N model passes."""
    n = data.images.shape[0]
    outputs = TargetOutputs(data, (sets + 1) * n)
    original = outputs.of_images(output="logit").numpy()
    x = outputs.x
    fill = make_substrate(x, substrate, data.bundle.mean, data.bundle.std)

    def build(jobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = jobs % n  # job = (set, image)
        removed = removed_of(jobs // n, image).view(len(jobs), 1, *x.shape[2:])
        return torch.where(removed, fill[image], x[image]), image

    return original[None, :] - outputs.of_jobs(sets * n, build, "logit").numpy().reshape(sets, n)


def faithfulness_correlation(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    n, _, h, w = data.images.shape
    pixels = h * w
    subsets = random_subsets(int(params["runs"]), n, pixels, subset_pixels(float(params["subset_fraction"]), pixels),
                             int(params["seed"]))
    flat = np.asarray(data.maps, dtype=np.float64).reshape(n, pixels)
    sums = np.take_along_axis(flat[None], subsets, axis=2).sum(axis=2)  # (runs, N)
    chosen = torch.as_tensor(subsets, device=data.bundle.device)

    def removed_of(run: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(len(run), pixels, dtype=torch.bool, device=chosen.device)
        return mask.scatter_(1, chosen[run, image], True)

    drops = logit_drops(data, len(subsets), removed_of, str(params["substrate"]))
    values = pearson_rows(sums.T, drops.T)
    return {FAITHFULNESS_CORRELATION.key: value_curves(FAITHFULNESS_CORRELATION, data.method.ident, values, UNDEFINED)}


def faithfulness_estimate(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    n, _, h, w = data.images.shape
    pixels = h * w
    ranks = ranks_of(pixel_order(data.maps, descending=True, absolute=False))
    bounds = group_bounds(pixels, int(params["steps"]))
    groups = len(bounds) - 1
    group = np.searchsorted(bounds, ranks, side="right") - 1  # (N, P): the group each pixel is removed with
    sums = np.zeros((n, groups))
    np.add.at(sums, (np.arange(n)[:, None], group), np.asarray(data.maps, dtype=np.float64).reshape(n, pixels))
    group_of = torch.as_tensor(group, device=data.bundle.device)

    def removed_of(step: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return group_of[image] == step[:, None]

    drops = logit_drops(data, groups, removed_of, str(params["substrate"]))
    values = pearson_rows(sums, drops.T)
    return {FAITHFULNESS_ESTIMATE.key: value_curves(FAITHFULNESS_ESTIMATE, data.method.ident, values, UNDEFINED)}


SUBSTRATE = Param("substrate", "Removed pixels become", "black", choices=SUBSTRATES, help=SUBSTRATE_HELP)

register_metric(Metric(
    key="faithfulness_correlation",
    label="Faithfulness correlation",
    scores=(FAITHFULNESS_CORRELATION,),
    compute=faithfulness_correlation,
    description=FAITHFULNESS_CORRELATION.description,
    params=(
        Param("runs", "Random subsets", 50, 2, 1000, 1, help="Subsets per image (one model pass each; Quantus: 100)"),
        Param("subset_fraction", "Subset size (fraction of pixels)", 0.02, 0.001, 0.5, 0.001,
              help="Pixels removed per subset, as a share of the image's pixels (Quantus counts them: 224)"),
        SUBSTRATE,
        Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Seeds the subsets"),
    ),
    passes=lambda params, n: n * (int(params["runs"]) + 1),
    page=FAITHFULNESS_PAGE,
))

register_metric(Metric(
    key="faithfulness_estimate",
    label="Faithfulness estimate",
    scores=(FAITHFULNESS_ESTIMATE,),
    compute=faithfulness_estimate,
    description=FAITHFULNESS_ESTIMATE.description,
    params=(
        Param("steps", "Groups of pixels", 32, 2, 1024, 1,
              help="The ranked pixels cut into this many groups, each removed alone (Quantus: one feature each)"),
        SUBSTRATE,
    ),
    passes=lambda params, n: n * (int(params["steps"]) + 1),
    page=FAITHFULNESS_PAGE,
))
