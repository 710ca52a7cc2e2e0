"""Monotonicity (Arya et al. 2019) and monotonicity correlation (Nguyen & Martínez 2020):
does the model's probability of the explained class follow the order of the map? Pixels
are ranked by absolute attribution, least relevant first (ties in raster order), and cut
into `steps` consecutive groups (`perturbation.group_bounds`).

- Monotonicity: start from the substrate (default black) and put the groups of the
  image back one after another; 1 when the probability never decreases, else 0 (the
  mean over images: the share of monotonic ones). Quantus 0.6.0's batched `Monotonicity`
  never puts the image back: its perturb function fills the indices of the baseline
  image with the baseline again, so every map scores True (`tests/
  test_catalogue_faithfulness_road.py` shows it). This follows Arya et al. and Quantus's
  per-image code up to v0.5, and equals Quantus 0.6.0 given a perturb function that
  restores the image's values.
- Monotonicity correlation: remove each group alone, `n_samples` times, replaced by a
  uniformly random grey level (pixel value in [0, 1], one per image and sample, NumPy's
  legacy stream seeded with `seed` as Quantus's draws) or by a fixed substrate (then one
  sample: they would all be equal); the Spearman correlation between the groups'
  attribution sums and the mean squared change of the probability (divided by the
  squared probability of the image, unless below `eps`). Equal to Quantus 0.6.0's
  `MonotonicityCorrelation` on the same model, images and maps (its `features_in_step`
  = C x pixels per group).

Both higher is better. Why in-house: Quantus runs one model pass per group (and sample)
for its batch; here all (group, sample, image) jobs go through the model in batches of
`forward_batch_size`, each built by one `torch.where`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..methods.registry import Param
from .base import Curves
from .map_scores import value_info
from .perturbation import TargetOutputs, group_bounds, pixel_order, ranks_of, spearman_rows, value_curves
from .registry import FAITHFULNESS_PAGE, Metric, MetricInput, register_metric
from .substrates import SUBSTRATE_HELP, SUBSTRATES, make_substrate, normalised

UNIFORM = "uniform"
NGUYEN = "Nguyen, Martínez. On quantitative aspects of model interpretability. arXiv:2007.07584, 2020."

MONOTONICITY = value_info(
    "monotonicity", "Monotonicity", True,
    "1 when putting the pixels back onto the substrate, least relevant first, never lowers the probability of the "
    "explained class (mean: the share of such images).",
    "Arya et al. One explanation does not fit all: a toolkit and taxonomy of AI explainability techniques. "
    "arXiv:1909.03012, 2019.")
MONOTONICITY_CORRELATION = value_info(
    "monotonicity_correlation", "Monotonicity correlation", True,
    "Spearman correlation between a pixel group's attribution and how much removing it moves the probability of the "
    "explained class.", NGUYEN)
UNDEFINED = "the correlation is undefined (the attributions or the probability changes are constant)"


def pixel_groups(maps: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) the group of each pixel (0: least |attribution|) and (N, groups) each
    group's sum of |attribution|."""
    n = len(maps)
    absolute = np.abs(np.asarray(maps, dtype=np.float64).reshape(n, -1))
    bounds = group_bounds(absolute.shape[1], steps)
    group = np.searchsorted(bounds, ranks_of(pixel_order(maps, descending=False, absolute=True)), side="right") - 1
    sums = np.zeros((n, len(bounds) - 1))
    np.add.at(sums, (np.arange(n)[:, None], group), absolute)
    return group, sums


def monotonicity(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    n, _, h, w = data.images.shape
    group, sums = pixel_groups(data.maps, int(params["steps"]))
    groups = sums.shape[1]
    outputs = TargetOutputs(data, groups * n)
    x = outputs.x
    fill = make_substrate(x, str(params["substrate"]), data.bundle.mean, data.bundle.std)
    group_of = torch.as_tensor(group, device=outputs.device)

    def build(jobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, step = jobs % n, jobs // n  # job = (groups put back, image)
        restored = (group_of[image] <= step[:, None]).view(-1, 1, h, w)
        return torch.where(restored, x[image], fill[image]), image

    probabilities = outputs.of_jobs(groups * n, build, "probability").numpy().reshape(groups, n)
    values = np.all(np.diff(probabilities, axis=0) >= 0, axis=0).astype(np.float64)
    return {MONOTONICITY.key: value_curves(MONOTONICITY, data.method.ident, values, UNDEFINED)}


def samples_per_group(params: Mapping[str, Any]) -> int:
    """Random fills per group: `n_samples` for the uniform grey level, 1 for a fixed substrate."""
    return int(params["n_samples"]) if params["substrate"] == UNIFORM else 1


def monotonicity_correlation(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    n, c, h, w = data.images.shape
    group, sums = pixel_groups(data.maps, int(params["steps"]))
    groups, samples = sums.shape[1], samples_per_group(params)
    outputs = TargetOutputs(data, n * (1 + groups * samples))
    x, device, bundle = outputs.x, outputs.device, data.bundle
    original = outputs.of_images(output="probability").numpy()
    group_of = torch.as_tensor(group, device=device)
    if params["substrate"] == UNIFORM:
        levels = np.random.RandomState(int(params["seed"])).uniform(size=(groups, samples, n))
        grey = torch.as_tensor(levels, dtype=torch.float32, device=device).reshape(-1, 1, 1, 1).expand(-1, c, 1, 1)
        fills = normalised(grey, bundle.mean, bundle.std)  # (groups x samples x N, C, 1, 1)
    else:
        fill = make_substrate(x, str(params["substrate"]), bundle.mean, bundle.std)

    def build(jobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, step = jobs % n, jobs // (n * samples)  # job = (group, sample, image)
        removed = (group_of[image] == step[:, None]).view(-1, 1, h, w)
        substrate = fills[jobs] if params["substrate"] == UNIFORM else fill[image]
        return torch.where(removed, substrate, x[image]), image

    probabilities = outputs.of_jobs(groups * samples * n, build, "probability").numpy().reshape(groups, samples, n)
    scale = np.where(np.abs(original) >= float(params["eps"]), 1.0 / np.abs(original), 1.0) ** 2
    variances = ((probabilities - original) ** 2).mean(axis=1) * scale  # (groups, N)
    values = spearman_rows(sums, variances.T)
    return {MONOTONICITY_CORRELATION.key: value_curves(MONOTONICITY_CORRELATION, data.method.ident, values,
                                                       UNDEFINED)}


STEPS_HELP = "The pixels, ranked by |attribution|, cut into this many groups (Quantus: one feature each)"

register_metric(Metric(
    key="monotonicity",
    label="Monotonicity",
    scores=(MONOTONICITY,),
    compute=monotonicity,
    description=MONOTONICITY.description,
    params=(
        Param("steps", "Groups of pixels", 32, 2, 1024, 1, help=STEPS_HELP),
        Param("substrate", "Start from", "black", choices=SUBSTRATES, help=SUBSTRATE_HELP),
    ),
    passes=lambda params, n: n * int(params["steps"]),
    page=FAITHFULNESS_PAGE,
))

register_metric(Metric(
    key="monotonicity_correlation",
    label="Monotonicity correlation",
    scores=(MONOTONICITY_CORRELATION,),
    compute=monotonicity_correlation,
    description=MONOTONICITY_CORRELATION.description,
    params=(
        Param("steps", "Groups of pixels", 16, 2, 256, 1, help=STEPS_HELP),
        Param("n_samples", "Samples per group", 8, 1, 100, 1,
              help="Random grey levels per group (one model pass each; Quantus: 100); 1 for a fixed substrate"),
        Param("substrate", "Removed pixels become", UNIFORM, choices=(UNIFORM, *SUBSTRATES),
              help="uniform: a random grey level per sample (Quantus's default); " + SUBSTRATE_HELP),
        Param("eps", "Smallest probability rescaled", 1e-5, 0.0, 1.0, 1e-5,
              help="Changes are divided by the squared probability of the image when it is at least this"),
        Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Seeds the grey levels"),
    ),
    passes=lambda params, n: n * (1 + int(params["steps"]) * samples_per_group(params)),
    page=FAITHFULNESS_PAGE,
))
