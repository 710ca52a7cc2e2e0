"""Region perturbation (Samek et al. 2017) and selectivity (Montavon et al. 2018): the
image is cut into a grid of patches, patches are ranked by the map's relevance summed
over each, and removed one after another (replaced by a substrate of
`substrates.SUBSTRATES`), the model's probability of the explained class read after each.

- Region perturbation: the first `regions` patches removed most relevant first (MoRF) and,
  on its own curve, least relevant first (LeRF); y = p(x) - p(x with k patches removed).
  A faithful map makes the MoRF curve rise fast (higher is better) and the LeRF curve stay
  low (lower is better).
- Selectivity: every patch removed most relevant first; y = p(x with k patches removed).
  A faithful map makes the probability fall fast (lower is better).

Quantus 0.6.0's `RegionPerturbation` and `Selectivity` compute the same curves (same
steps, same differences): `tests/test_catalogue_faithfulness_regions.py` checks them
point for point. The deliberate differences:
- x is the fraction of the image's patches removed (k / K), so the score (the curve's
  trapezoid area) is Quantus's AUC (`np.trapz`, dx = 1 patch) divided by K: comparable
  across grid sizes;
- the patches are a `grid` x `grid` split of the image (rows and columns of
  floor(side / grid) or one more pixel), not Quantus's `patch_size` in pixels with the
  image padded to a multiple of it: the number of model passes, and so the cost a
  visitor's budget is charged, does not depend on the model's input size. The two grids
  are the same when the side is a multiple of `grid` (`patch_size` = side / grid);
- fills are the product's substrates (pixel values of the image as the model sees it):
  Quantus's "black" is the smallest value of the *normalised* image over all channels;
  its "mean" the mean of the image as perturbed so far;
- ties between patches keep raster order (a stable sort); Quantus's `np.argsort` order
  among tied patches is unspecified;
- Quantus's `order="random"` is left out: a random ranking is a control, not a score of
  a map (the ROAR page draws that baseline).

Why in-house: the definitions are a few lines each, and Quantus perturbs and predicts one
step at a time over its batch, while here every step of every image of a batch goes
through the model in forward-sized chunks built on the device.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..methods.registry import Param
from .base import Curves, MetricInfo
from .perturbation import TargetOutputs
from .registry import FAITHFULNESS_PAGE, Metric, MetricInput, Strip, register_metric
from .substrates import SUBSTRATE_HELP, SUBSTRATES, make_substrate

SAMEK = ("Samek, Binder, Montavon, Lapuschkin, Müller. Evaluating the visualization of what a deep neural network has "
         "learned. IEEE TNNLS 28(11), 2017.")
MONTAVON = ("Montavon, Samek, Müller. Methods for interpreting and understanding deep neural networks. Digital Signal "
            "Processing 73, 2018.")

REGION_MORF = MetricInfo(
    key="region_perturbation_morf",
    name="Region perturbation MoRF",
    higher_is_better=True,
    x_label="fraction of patches removed (most relevant first)",
    y_label="drop of the explained class's probability",
    description="Patches removed most relevant first; a faithful map makes the probability drop early "
                "(area over the fraction of patches removed; higher is better).",
    reference=SAMEK,
)
REGION_LERF = MetricInfo(
    key="region_perturbation_lerf",
    name="Region perturbation LeRF",
    higher_is_better=False,
    x_label="fraction of patches removed (least relevant first)",
    y_label="drop of the explained class's probability",
    description="Patches removed least relevant first; a faithful map keeps the probability where it was "
                "(lower is better).",
    reference=SAMEK,
)
SELECTIVITY = MetricInfo(
    key="selectivity",
    name="Selectivity",
    higher_is_better=False,
    x_label="fraction of patches removed (most relevant first)",
    y_label="probability of the explained class",
    description="Every patch removed most relevant first; a faithful map makes the probability fall fast "
                "(lower is better).",
    reference=MONTAVON,
)

ORDERS = ("morf", "lerf")


def patch_labels(height: int, width: int, grid: int) -> np.ndarray:
    """(H*W,) the patch of each pixel, raster order of a grid x grid split (fewer rows or
    columns where the image has fewer pixels than `grid`)."""
    rows, cols = min(grid, height), min(grid, width)
    row = np.arange(height) * rows // height
    col = np.arange(width) * cols // width
    return (row[:, None] * cols + col[None, :]).ravel()


def patch_steps(maps: np.ndarray, labels: np.ndarray, order: str) -> tuple[np.ndarray, int]:
    """(N, H*W) the step (0 = first) at which each pixel's patch is removed, patches ranked
    by their summed relevance (`order` "morf": highest first, "lerf": lowest first; ties
    in raster order), and the number of patches."""
    n = len(maps)
    count = int(labels.max()) + 1
    flat = np.asarray(maps, dtype=np.float64).reshape(n, -1)
    sums = np.bincount((np.arange(n)[:, None] * count + labels[None, :]).ravel(), weights=flat.ravel(),
                       minlength=n * count).reshape(n, count)
    ranked = np.argsort(-sums if order == "morf" else sums, axis=1, kind="stable")
    step = np.empty_like(ranked)
    np.put_along_axis(step, ranked, np.arange(count)[None, :].repeat(n, axis=0), axis=1)
    return step[:, labels], count


def removal_outputs(data: MetricInput, params: Mapping[str, Any], orders: tuple[str, ...], steps: int | None,
                    total: int, with_original: bool) -> tuple[torch.Tensor | None, torch.Tensor, int]:
    """The explained class's probability with the first 1 .. `steps` patches removed
    (all of them: None), per order: (O, N, steps) float64, with the unperturbed
    probability (N,) first when `with_original`, and the number of patches K."""
    bundle = data.bundle
    x = data.images.to(bundle.device, torch.float32)
    n, _, h, w = x.shape
    labels = patch_labels(h, w, int(params["grid"]))
    ranked = [patch_steps(data.maps, labels, order) for order in orders]
    count = ranked[0][1]
    steps = count if steps is None else min(steps, count)
    pixel_step = torch.as_tensor(np.stack([r[0] for r in ranked]), device=bundle.device).view(len(orders), n, 1, h, w)
    fill = make_substrate(x, params["fill"], bundle.mean, bundle.std)
    outputs = TargetOutputs(data, total)
    original = outputs.of_images(x) if with_original else None

    def build(jobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        step = jobs % steps + 1
        image = (jobs // steps) % n
        order = jobs // (steps * n)
        removed = pixel_step[order, image] < step.view(-1, 1, 1, 1)
        return torch.where(removed, fill[image], x[image]), image

    curves = outputs.of_jobs(len(orders) * n * steps, build).view(len(orders), n, steps)
    return original, curves, count


def _grid(default: int) -> Param:
    return Param("grid", "Patches per side", default, 2, 32, 1,
                 help="The image is cut into grid x grid patches (Quantus's patch_size = side / grid)")


FILL = Param("fill", "Removed patches become", "black", choices=SUBSTRATES, help=SUBSTRATE_HELP)


def _region_perturbation(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    regions = int(params["regions"])
    original, probs, count = removal_outputs(data, params, ORDERS, regions, _region_passes(params, len(data.images)),
                                             with_original=True)
    assert original is not None
    drops = (original[None, :, None] - probs).numpy()
    x = np.arange(1, drops.shape[-1] + 1) / count
    ident = data.method.ident
    return {info.key: Curves(info, ident, x, drops[o]) for o, info in enumerate((REGION_MORF, REGION_LERF))}


def _selectivity(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    _, probs, count = removal_outputs(data, params, ("morf",), None, _selectivity_passes(params, len(data.images)),
                                      with_original=False)
    x = np.arange(1, count + 1) / count
    return {SELECTIVITY.key: Curves(SELECTIVITY, data.method.ident, x, probs[0].numpy())}


def _region_passes(params: Mapping[str, Any], n: int) -> int:
    return n * (1 + 2 * min(int(params["regions"]), int(params["grid"]) ** 2))


def _selectivity_passes(params: Mapping[str, Any], n: int) -> int:
    return n * int(params["grid"]) ** 2


STRIP_FRACTIONS = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75)


def _strip(data: MetricInput, params: Mapping[str, Any], index: int) -> Strip:
    """Image `index` with its most relevant patches removed, at a few fractions of the
    patches, with the probability of the explained class."""
    bundle = data.bundle
    x = data.images[index : index + 1].to(bundle.device, torch.float32)
    _, _, h, w = x.shape
    pixel_step, count = patch_steps(data.maps[index : index + 1], patch_labels(h, w, int(params["grid"])), "morf")
    step = torch.as_tensor(pixel_step, device=bundle.device).view(1, h, w)
    fill = make_substrate(x, params["fill"], bundle.mean, bundle.std)[0]
    removed = [int(round(f * count)) for f in STRIP_FRACTIONS]
    batch = torch.stack([torch.where(step < k, fill, x[0]) for k in removed])
    target = int(data.targets[index])
    probs = bundle.probabilities(batch)[:, target].numpy()
    captions = tuple(f"{k} of {count} patches · p={p:.3f}" for k, p in zip(removed, probs, strict=True))
    return Strip(bundle.to_display(batch.cpu()), captions,
                 note=f"Most relevant patches first. p = probability of class {target}: {bundle.class_names[target]}.")


register_metric(Metric(
    key="region_perturbation",
    label="Region perturbation",
    scores=(REGION_MORF, REGION_LERF),
    compute=_region_perturbation,
    description="The image is cut into patches, ranked by the map's summed relevance; the first patches are removed "
                "most relevant first (MoRF) and least relevant first (LeRF); y = drop of the explained class's "
                "probability (Quantus's RegionPerturbation).",
    params=(
        _grid(16),
        Param("regions", "Patches removed", 32, 1, 256, 1,
              help="Patches removed per curve (Quantus's regions_evaluation); passes per image = 1 + 2 x this"),
        FILL,
    ),
    passes=_region_passes,
    page=FAITHFULNESS_PAGE,
    detail=_strip,
))

register_metric(Metric(
    key="selectivity",
    label="Selectivity",
    scores=(SELECTIVITY,),
    compute=_selectivity,
    description="The image is cut into patches, removed most relevant first (summed relevance) until none is left; "
                "y = probability of the explained class (Quantus's Selectivity).",
    params=(_grid(8), FILL),
    passes=_selectivity_passes,
    page=FAITHFULNESS_PAGE,
    detail=_strip,
))
