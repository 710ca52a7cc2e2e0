"""Axiomatic metrics: does a map obey properties an attribution should have by
construction? Quantus's three (`quantus/metrics/axiomatic/`, v0.6.0), one registered
family each on the "Axiomatic" page, one value per image:

- completeness (Sundararajan et al. 2017): |sum of the map - (f(x) - f(baseline))|, f the
  explained class's logit, the baseline one of `substrates.SUBSTRATES` (default black:
  pixel value 0). 0 when the map accounts for the whole change of the logit (Integrated
  Gradients, DeepLIFT, LRP-0 without biases); lower is better. Quantus returns the bool
  `sum(map) == f(x) - f(baseline)` (exact float equality, on maps it normalises by their
  maximum by default); here the gap itself, on the raw map (as the paper defines it and
  Quantus with `normalise=False`): Quantus's True is a gap of 0.
- non-sensitivity (Nguyen & Martínez 2020): the image is cut into `grid` x `grid` cells,
  each replaced in turn by the baseline (all channels); a cell violates the axiom when
  the model is insensitive to it (the class probability moves by less than `eps`) but
  its relevance (the sum of |map| / max |map| over the cell) is not below `eps`, or the
  other way round. The score is the share of cells that violate it; lower is better.
  Quantus perturbs one input value at a time (a channel of a pixel, its
  `features_in_step` other than 1 fails on a shape mismatch) and returns the count of
  violating values: on one-channel images with `grid` = the side, that count is this
  share times the pixels (`tests/test_catalogue_axiomatic.py`). Cells instead of values
  bound the cost ((grid^2 + 1) passes per image whatever the image size: Quantus needs
  C x H x W + 1, 150,529 on a 224 px photo); one cell per pixel for all channels because
  the maps are per pixel.
- input invariance (Kindermans et al. 2017): the input is shifted by a constant
  (`input_shift`, normalised units) and a copy of the model absorbs the shift in its
  first layer's bias (b - shift x the sum of its weights per output), so the copy
  computes exactly the same function on the shifted input; the method's map of the
  copy on the shifted input is compared with its map of x. Scores: `input_invariance`, 1
  when every pixel agrees within `tolerance` (numpy's `isclose`, Quantus's test and
  default 1e-4), else 0 (higher is better); `input_shift_change`, the relative change
  ||map' - map|| / ||map|| (lower is better). Quantus's default shift leaves each image's
  first input value unshifted (its `perturb_batch` hands the perturbation
  `indices[i][1:]`); here every value moves. Quantus shifts the bias only, so with a
  zero-padded first convolution its copy differs from the model along the borders (the
  padding is not shifted); here the borders get the correction the shifted padding
  would have given (a forward hook adding the per-position residual, zero inside), and
  every image's logits on the copy are checked against the model's before the maps are
  compared (an image whose logits differ, e.g. a model that rescales its input before
  the first layer, is skipped with the reason). The map of x is recomputed beside the
  shifted one, in the same call (the maps handed in are not used): a seeded stochastic
  method's maps, SmoothGrad's, depend on how the images were batched when its noise was
  drawn, and the page and the batch evaluation batch them differently. The model itself
  is never changed: the copy is made under the bundle's lock and discarded. On deep
  float32 networks the rounding of the shifted first layer flips a few rectifiers, so
  even gradient maps move by ~1 % of their scale (Saliency on EfficientNet-Lite0: 0.4 %)
  and can fail the 1e-4 test: the relative change tells that from a real failure.

Costs: completeness 1 pass per image and 1 for the baseline (zero, black, grey and noise
are one image for all images; mean and blur one more pass per image);
non-sensitivity grid^2 + 1; input invariance 2 forward passes (the check) and two maps of
the method per image. Why in-house: Quantus evaluates one feature per forward call over
numpy arrays, while these batch every perturbed copy through `forward_batch_size` chunks
on the model's device, vectorised over the images.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..methods.registry import Param, attribute, get_method
from ..models.bundle import ModelBundle, share_tensors
from ..models.model_lock import ModelLock
from .base import Curves, MetricInfo, Skipped
from .batching import forward_batch_size
from .map_scores import prepared_maps, value_info
from .registry import AXIOMATIC_PAGE, Metric, MetricInput, register_metric
from .substrates import CONSTANT_SUBSTRATES, SUBSTRATE_HELP, SUBSTRATES, make_substrate

SUNDARARAJAN = "Sundararajan, Taly, Yan. Axiomatic attribution for deep networks. ICML 2017."
NGUYEN = "Nguyen, Martínez. On quantitative aspects of model interpretability. arXiv:2007.07584, 2020."
KINDERMANS = ("Kindermans, Hooker, Adebayo, Alber, Schütt, Dähne, Erhan, Kim. The (un)reliability of saliency "
              "methods. In Explainable AI, Springer LNCS 11700, 2019 (arXiv:1711.00867).")

COMPLETENESS = value_info(
    "completeness", "Completeness gap", False,
    "|sum of the map - (f(x) - f(baseline))|, f the explained class's logit: 0 when the map accounts for the whole "
    "change of the logit between the baseline and the image.", SUNDARARAJAN)
NON_SENSITIVITY = value_info(
    "non_sensitivity", "Non-sensitivity violations", False,
    "Share of image cells where the model's sensitivity and the map disagree: the class probability does not move "
    "when the cell is removed but the cell has relevance, or the other way round.", NGUYEN)
INPUT_INVARIANCE = value_info(
    "input_invariance", "Input invariance", True,
    "1 when the map is unchanged (within the tolerance at every pixel) after a constant input shift that a copy "
    "of the model absorbs in its first layer's bias, else 0.", KINDERMANS)
SHIFT_CHANGE = value_info(
    "input_shift_change", "Change under input shift", False,
    "Relative change ||map' - map|| / ||map|| of the map under a constant input shift that the model absorbs in "
    "its first layer's bias.", KINDERMANS)

SHARED_BASELINES = (*CONSTANT_SUBSTRATES, "noise")  # the same image for every image: one pass for all
BASELINE = Param("baseline", "Baseline (what removed pixels become)", "black", choices=SUBSTRATES,
                 help=SUBSTRATE_HELP)
NOT_ABSORBED = "the model's first layer does not absorb the input shift (its logits on the shifted input differ)"
ABSORBED_TOLERANCE = 1e-3  # relative: the copy's logit on the shifted image against the model's on the image
ZERO_MAP = "the map is zero: its relative change is undefined"
NO_FIRST_LAYER = "the model has no Conv2d or Linear first layer to absorb the input shift"

Build = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


def value_curves(info: MetricInfo, ident: str, values: np.ndarray, skipped: list[Skipped]) -> Curves:
    """One value per image as `Curves`, the `skipped` images left out."""
    gone = {s.index for s in skipped}
    kept = tuple(i for i in range(len(values)) if i not in gone)
    curves = np.asarray(values, dtype=np.float64)[list(kept)][:, None] if kept else np.zeros((0, 1))
    return Curves(info, ident, np.zeros(1), curves, kept=kept, skipped=tuple(skipped))


def class_outputs(bundle: ModelBundle, count: int, build: Build, image_shape: tuple[int, ...], probabilities: bool,
                  progress: Callable[[int], None] = lambda done: None) -> np.ndarray:
    """The explained class's logit (or probability) for `count` inputs of `image_shape`
    (C, H, W) made chunk by chunk: `build(start, stop)` -> (inputs (B, C, H, W) on the
    model's device, their classes (B,)), chunks of `forward_batch_size`, under
    `torch.inference_mode()`, the bundle's lock taken per chunk; `progress(done)` after each chunk.
    (count,) float64."""
    out = np.empty(count, dtype=np.float64)
    size = forward_batch_size(bundle, image_shape)
    for start in range(0, count, size):
        stop = min(start + size, count)
        with torch.inference_mode():
            inputs, classes = build(start, stop)
            with bundle.lock:  # per chunk: a waiting visitor's pass gets the model between two chunks
                scores = bundle.model(inputs).double()
            if probabilities:
                scores = scores.softmax(dim=1)
            out[start:stop] = scores.gather(1, classes.view(-1, 1)).view(-1).cpu().numpy()
        progress(stop)
    return out


def device_batch(data: MetricInput) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (float32) and their classes on the model's device."""
    device = data.bundle.device
    return data.images.to(device, torch.float32), data.targets.to(device, torch.long)


def _report(data: MetricInput, total: int, before: int = 0) -> Callable[[int], None]:
    def report(done: int) -> None:
        if data.progress is not None:
            data.progress(before + done, total)
    return report


def baseline_passes(baseline: str, n: int) -> int:
    """Passes of the baselines of `n` images: one for a baseline shared by every image."""
    return min(n, 1) if baseline in SHARED_BASELINES else n


def completeness_values(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    bundle = data.bundle
    x, targets = device_batch(data)
    n = x.shape[0]
    name = str(params["baseline"])
    shared = baseline_passes(name, n)
    total = n + shared
    baseline = make_substrate(x[:shared], name, bundle.mean, bundle.std)
    logits = class_outputs(bundle, n, lambda a, b: (x[a:b], targets[a:b]), tuple(x.shape[1:]), probabilities=False,
                           progress=_report(data, total))
    if shared < n:  # one image for all: its logit of every image's class
        with torch.inference_mode(), bundle.lock:
            row = bundle.model(baseline).double()[0]
        at_baseline = row[targets].cpu().numpy()
        _report(data, total)(total)
    else:
        at_baseline = class_outputs(bundle, n, lambda a, b: (baseline[a:b], targets[a:b]), tuple(x.shape[1:]),
                                    probabilities=False, progress=_report(data, total, n))
    sums = np.asarray(data.maps, dtype=np.float64).reshape(n, -1).sum(axis=1)
    gaps = np.abs(sums - (logits - at_baseline))
    return {COMPLETENESS.key: value_curves(COMPLETENESS, data.method.ident, gaps, [])}


def grid_cells(height: int, width: int, grid: int) -> tuple[np.ndarray, int]:
    """(H, W) cell index of every pixel for a `grid` x `grid` partition (at most one cell
    per pixel: the grid is capped by the sides) and the number of cells."""
    rows, cols = min(grid, height), min(grid, width)
    cell_rows = np.arange(height) * rows // height
    cell_cols = np.arange(width) * cols // width
    return cell_rows[:, None] * cols + cell_cols[None, :], rows * cols


def non_sensitivity_values(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    bundle = data.bundle
    x, targets = device_batch(data)
    n, _, height, width = x.shape
    eps = float(params["eps"])
    cells, count = grid_cells(height, width, int(params["grid"]))
    relevance = prepared_maps(data.maps, absolute=True)  # (N, H*W): |map| / max |map|, Quantus's preprocessing
    offsets = (np.arange(n)[:, None] * count + cells.reshape(1, -1)).ravel()
    cell_relevance = np.bincount(offsets, weights=relevance.ravel(), minlength=n * count).reshape(n, count)
    fill = make_substrate(x, str(params["baseline"]), bundle.mean, bundle.std)
    cell_map = torch.as_tensor(cells, device=x.device)
    total = n * (count + 1)
    shape = tuple(x.shape[1:])
    reference = class_outputs(bundle, n, lambda a, b: (x[a:b], targets[a:b]), shape, probabilities=True,
                              progress=_report(data, total))

    def perturbed(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = torch.arange(start, stop, device=x.device)
        image, cell = pairs // count, pairs % count
        removed = (cell_map[None] == cell[:, None, None])[:, None]  # (B, 1, H, W)
        return torch.where(removed, fill[image], x[image]), targets[image]

    outputs = class_outputs(bundle, n * count, perturbed, shape, probabilities=True, progress=_report(data, total, n))
    insensitive = np.abs(outputs.reshape(n, count) - reference[:, None]) < eps
    violations = insensitive ^ (cell_relevance < eps)
    return {NON_SENSITIVITY.key: value_curves(NON_SENSITIVITY, data.method.ident, violations.mean(axis=1), [])}


def first_affine_layer(model: nn.Module, example: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """The name of the first Conv2d or Linear module a forward pass of `example` runs, and
    the input it got; None when there is none (or the model takes no hooks: TorchScript)."""
    seen: list[tuple[str, torch.Tensor]] = []

    def record(name: str, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if not seen:
            seen.append((name, inputs[0]))

    handles = []
    try:
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                handles.append(module.register_forward_pre_hook(functools.partial(record, name)))
        with torch.no_grad():
            model(example)
    except (RuntimeError, AttributeError, NotImplementedError):
        return None
    finally:
        for handle in handles:
            handle.remove()
    return seen[0] if seen else None


def absorb_shift(layer: nn.Module, shift: float, layer_input: torch.Tensor) -> None:
    """Make the affine `layer` compute on inputs shifted by `shift` what it computed before:
    its bias becomes b - D, D = layer(shift) - layer(0) inside the image (a new bias
    parameter where it had none); where the layer pads with zeros, D differs along the
    borders and a forward hook adds the residual there (zero everywhere else).
    `layer_input` gives the shape of the layer's input."""
    with torch.no_grad():
        zeros = torch.zeros((1, *layer_input.shape[1:]), device=layer_input.device, dtype=layer_input.dtype)
        response = layer(zeros + shift) - layer(zeros)  # (1, O, h, w) or (1, O)
        inside = response[0, :, response.shape[2] // 2, response.shape[3] // 2] if response.dim() == 4 else response[0]
        bias = layer.bias if isinstance(layer.bias, torch.Tensor) else torch.zeros_like(inside)
        layer.bias = nn.Parameter(bias.detach() - inside, requires_grad=False)
        residual = (inside.view(1, -1, *([1] * (response.dim() - 2))) - response).detach()
    if residual.abs().max() > 0:
        layer.register_forward_hook(lambda module, inputs, output: output + residual.to(output.dtype))


def shifted_bundle(bundle: ModelBundle, example: torch.Tensor, shift: float) -> ModelBundle | None:
    """A bundle over a copy of the model (and of its rectifier form, sharing the copy's
    tensors) whose first layer absorbs an input shift by `shift`; None when the model has
    no Conv2d or Linear first layer. The cached model is only read, under its lock."""
    with bundle.lock:
        model = copy.deepcopy(bundle.model)
        rectifier = (
            None if bundle.rectifier_model is None else share_tensors(model, copy.deepcopy(bundle.rectifier_model))
        )
    first = first_affine_layer(model, example)
    if first is None:
        return None
    name, layer_input = first
    for form in (model,) if rectifier is None else (model, rectifier):
        absorb_shift(form.get_submodule(name), shift, layer_input)
    if rectifier is not None:
        share_tensors(model, rectifier)  # the new bias: one tensor for both forms
    return dataclasses.replace(bundle, model=model, rectifier_model=rectifier, lock=ModelLock(),
                               model_id=f"{bundle.model_id}~shift{shift:g}")


def input_invariance_values(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    spec = data.method
    get_method(spec.key)  # the metric recomputes maps with the method
    x, targets = device_batch(data)
    n = x.shape[0]
    shift = float(params["input_shift"])
    per_map = data.passes_per_map
    total = 2 * n + 2 * n * per_map
    ident = spec.ident
    shifted = shifted_bundle(data.bundle, x[:1], shift)
    if shifted is None:
        skipped = [Skipped(i, NO_FIRST_LAYER) for i in range(n)]
        empty = np.full(n, np.nan)
        return {INPUT_INVARIANCE.key: value_curves(INPUT_INVARIANCE, ident, empty, skipped),
                SHIFT_CHANGE.key: value_curves(SHIFT_CHANGE, ident, empty, skipped)}
    moved = x + shift
    shape = tuple(x.shape[1:])
    original = class_outputs(data.bundle, n, lambda a, b: (x[a:b], targets[a:b]), shape, False, _report(data, total))
    after = class_outputs(shifted, n, lambda a, b: (moved[a:b], targets[a:b]), shape, False,
                          _report(data, total, n))
    absorbed = np.abs(after - original) <= ABSORBED_TOLERANCE * (1.0 + np.abs(original))
    skipped = [Skipped(i, NOT_ABSORBED) for i in range(n) if not absorbed[i]]

    def maps_of(bundle: ModelBundle, images: torch.Tensor, before: int) -> np.ndarray:
        def progress(done: int, count: int) -> None:
            if data.progress is not None:
                data.progress(before + done * per_map, total)
        maps = attribute(bundle, images, spec.key, targets.tolist(), progress=progress, **spec.resolved)
        return maps.astype(np.float64).reshape(n, -1)

    # the map of x too, in the same call as the shifted one: a seeded stochastic method's
    # maps (SmoothGrad's noise) depend on how the images were batched when they were drawn
    maps = maps_of(data.bundle, x, 2 * n)
    moved_maps = maps_of(shifted, moved, 2 * n + n * per_map)
    invariant = np.asarray(np.isclose(maps, moved_maps, atol=float(params["tolerance"])).all(axis=1), dtype=np.float64)
    norms = np.linalg.norm(maps, axis=1)
    moved_by = np.linalg.norm(moved_maps - maps, axis=1)
    change = np.divide(moved_by, norms, out=np.full(n, np.nan), where=norms > 0)
    zero = [Skipped(i, ZERO_MAP) for i in range(n) if absorbed[i] and not norms[i] > 0]
    return {INPUT_INVARIANCE.key: value_curves(INPUT_INVARIANCE, ident, invariant, skipped),
            SHIFT_CHANGE.key: value_curves(SHIFT_CHANGE, ident, change, sorted(skipped + zero, key=lambda s: s.index))}


register_metric(Metric(
    key="completeness",
    label="Completeness",
    scores=(COMPLETENESS,),
    compute=completeness_values,
    description="Does the map add up to the change of the class logit between a baseline image and the image? "
                "|sum of the map - (f(x) - f(baseline))|; 0 for complete methods (Integrated Gradients).",
    params=(BASELINE,),
    passes=lambda params, n: n + baseline_passes(str(params["baseline"]), n),
    page=AXIOMATIC_PAGE,
))

register_metric(Metric(
    key="non_sensitivity",
    label="Non-sensitivity",
    scores=(NON_SENSITIVITY,),
    compute=non_sensitivity_values,
    description="Each cell of a grid is replaced by the baseline in turn: cells the model ignores should have no "
                "relevance, and cells with no relevance should be ignored; the share of cells where the two disagree.",
    params=(
        Param("grid", "Cells per side", 8, 1, 64, 1,
              help="The image is cut into grid x grid cells, each removed in turn: grid^2 + 1 passes per image "
                   "(capped by the image's side)"),
        Param("eps", "Threshold", 1e-5, 0.0, 1.0, 1e-5,
              help="A cell has no relevance below this share of the map's maximum, and the model ignores it when the "
                   "class probability moves by less (Quantus: eps=1e-5)"),
        BASELINE,
    ),
    passes=lambda params, n: n * (int(params["grid"]) ** 2 + 1),
    page=AXIOMATIC_PAGE,
))

register_metric(Metric(
    key="input_invariance",
    label="Input invariance",
    scores=(INPUT_INVARIANCE, SHIFT_CHANGE),
    compute=input_invariance_values,
    description="The image is shifted by a constant and a copy of the model absorbs the shift in its first layer's "
                "bias (the same function): an input-invariant method gives the same map.",
    params=(
        Param("input_shift", "Input shift (normalised units)", -1.0, -5.0, 5.0, 0.1,
              help="Added to every input value; the copy's first-layer bias absorbs it (Quantus: -1)"),
        Param("tolerance", "Tolerance", 1e-4, 0.0, 1.0, 1e-5,
              help="Largest difference per pixel for the map to count as unchanged (numpy isclose's atol; Quantus: "
                   "1e-4)"),
    ),
    passes=lambda params, n: 2 * n,
    maps_per_image=lambda params: 2,
    page=AXIOMATIC_PAGE,
))
