"""Robustness of a map to small input perturbations: Quantus 0.6.0's robustness family
(`quantus/metrics/robustness/`), each map of a perturbed input recomputed by the method
through the registry (`explain.methods.registry.attribute`), for the explained class.

- Average sensitivity (Yeh et al. 2019; Quantus `AvgSensitivity`): the mean over
  `n_samples` perturbations x' = x + u, u ~ U[-r, r] per value (`noise_radius`, Quantus's
  `lower_bound`, 0.2), of ||map(x') - map(x)|| / ||map(x)|| (Frobenius).
- Local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018; `LocalLipschitzEstimate`): the
  max over x' = x + g, g ~ N(0, sigma^2) per value (`noise_std`, 0.1), of
  ||map(x') - map(x)||_2 / (||x' - x||_2 + 1e-10), each map first divided by its largest
  |value| (`normalise`, Quantus's default).
- Relative input / output stability (Agarwal et al. 2022; `RelativeInputStability`,
  `RelativeOutputStability`): the max over x' = x + u, u ~ U[low, high] per value
  (Quantus's default [0.02, 0.2]: one-sided), of ||(map(x) - map(x')) / map(x)|| divided
  by ||(x - x') / x|| (input) or by ||logits(x) - logits(x')|| (output), a zero in a
  divisor replaced by 1e-6, over the perturbations that keep the model's prediction;
  relative representation stability (`RelativeRepresentationStability`) divides by the
  relative change of an internal layer's outputs instead: the bundle's CAM layer (a
  model without one is skipped, saying so). One family: the three share the
  perturbations, their maps and their forward passes (the layer is read by a hook).

All lower is better, one value per image. The maps of x are the ones given (as Quantus's
`a_batch`); x and its noise are in the model's input units (after the bundle's
normalisation), as Quantus adds noise to the `x_batch` it is given. The noise is drawn
from `numpy.random.RandomState(seed)` in Quantus's order (sample by sample, one
(N, C*H*W) draw each), so Quantus run after `np.random.seed(seed)` on the same batch
perturbs exactly the same inputs (`tests/test_catalogue_robustness.py`); an image's
perturbations depend on its place in the batch, as in Quantus.

Deliberate differences from Quantus (the tests show each):
- local Lipschitz normalises each map by its own maximum; Quantus's `normalise_by_max`
  takes the whole batch's, so one image's score depends on its batch mates (equal for a
  batch of one, or given Quantus `normalise_func_kwargs={"normalise_axes": (1, 2, 3)}`);
- the relative stabilities take the max over the perturbations that kept the prediction
  (the paper's definition); Quantus's `np.max` over NaNs makes an image NaN as soon as
  one perturbation flips its prediction. An image whose every perturbation flips it is
  skipped, saying so.

Batched: every image's perturbations of a block of samples go to the method in one
`attribute` call (it chunks them by the device batch), forward passes in
`forward_batch_size` chunks under `torch.inference_mode()` and the bundle's lock, the
scores vectorised over (samples, images) in numpy; a block holds at most
`BLOCK_VALUES` input values (one sample of every image at least), which bounds memory
whatever `n_samples`. Costs: `n_samples` maps per image (`maps_per_image`), and for the
relative stabilities `n x (1 + n_samples)` forward passes (the logits of x and of each
x'). Why in-house: Quantus runs one (N, D) perturbation and one explain call at a time
and converts everything through numpy per step; here the registry's maps, shapes and
progress come for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from ..methods.registry import Param, attribute
from ..models.bundle import ModelBundle
from .base import Curves, MetricInfo, Skipped
from .batching import forward_batch_size
from .map_scores import normalise_by_max, scalar_curves, value_info
from .registry import ROBUSTNESS_PAGE, Metric, MetricInput, Strip, register_metric

NoiseDraw = Callable[[np.random.RandomState, tuple[int, ...]], np.ndarray]

BLOCK_VALUES = 2**24  # perturbed input values per attribute call: 64 MB of float32
LIPSCHITZ_EPS = 1e-10  # Quantus's `lipschitz_constant`
EPS_MIN = 1e-6  # Quantus's `eps_min` of the relative stabilities

ZERO_MAP = "the map is zero everywhere: its relative change is undefined"
ALL_FLIPPED = "every perturbation changed the model's prediction"
UNDEFINED = "the score is undefined for this map"
NO_LAYER = "the model names no internal layer (its CAM layer) to compare"


@dataclass(frozen=True)
class Outputs:
    """What the forward passes of M inputs give: logits (M, classes) and, where asked,
    an internal layer's outputs flattened (M, R), float64."""

    logits: np.ndarray
    hidden: np.ndarray | None = None


@dataclass(frozen=True)
class PerturbedBlock:
    """Perturbations `first .. first + k - 1` of every image: inputs (k, N, D) float32,
    their maps (k, N, P) float64 and, when asked, their forward `outputs` (k x N rows,
    sample-major) and those of the unperturbed images (`base`, N rows)."""

    first: int
    inputs: np.ndarray
    maps: np.ndarray
    outputs: Outputs | None = None
    base: Outputs | None = None


def uniform_noise(low: float, high: float) -> NoiseDraw:
    """U[low, high] per value: Quantus's `batch_uniform_noise`."""
    return lambda rng, shape: rng.uniform(low, high, size=shape)


def gaussian_noise(mean: float, std: float) -> NoiseDraw:
    """N(mean, std^2) per value: Quantus's `batch_gaussian_noise`."""
    return lambda rng, shape: rng.normal(mean, std, size=shape)


def flat_inputs(data: MetricInput) -> np.ndarray:
    """The batch as Quantus's perturbation functions see it: (N, C*H*W) float32."""
    return data.images.detach().cpu().float().numpy().reshape(len(data.images), -1)


def representation_layer(bundle: ModelBundle) -> nn.Module | None:
    """The internal layer whose outputs relative representation stability compares: the
    bundle's CAM layer (None when it names none)."""
    return bundle.cam_module() if bundle.cam_layer is not None else None


def forward_outputs(data: MetricInput, inputs: np.ndarray, layer: nn.Module | None = None) -> Outputs:
    """Logits of inputs (M, D) and, with `layer`, its outputs, in forward-batch chunks."""
    bundle = data.bundle
    shape = tuple(data.images.shape[1:])
    batch = torch.from_numpy(inputs).view(-1, *shape)
    logits, hidden = [], []

    def keep(module: nn.Module, args: Any, output: Any) -> None:
        first = output[0] if isinstance(output, (tuple, list)) else output
        hidden.append(first.detach().flatten(1).double().cpu())

    with torch.inference_mode(), bundle.lock:
        handle = layer.register_forward_hook(keep) if layer is not None else None
        try:
            for chunk in batch.split(forward_batch_size(bundle, shape)):
                logits.append(bundle.model(chunk.to(bundle.device)).double().cpu())
        finally:
            if handle is not None:
                handle.remove()
    return Outputs(torch.cat(logits).numpy(), torch.cat(hidden).numpy() if hidden else None)


def perturbed_blocks(data: MetricInput, draw: NoiseDraw, samples: int, seed: int, with_outputs: bool = False,
                     layer: nn.Module | None = None) -> Iterator[PerturbedBlock]:
    """Every image's `samples` perturbations x + noise, block by block, with their maps
    (and, `with_outputs`, the forward outputs of x and of each x', `layer`'s too);
    progress in model passes through `data.progress`."""
    x = flat_inputs(data)
    n, values = x.shape
    shape = tuple(data.images.shape[1:])
    per_map = data.passes_per_map
    total = samples * n * per_map + (n * (1 + samples) if with_outputs else 0)
    done = 0

    def advance(passes: int) -> None:
        nonlocal done
        done += passes
        if data.progress is not None:
            data.progress(done, total)

    base = None
    if with_outputs:
        base = forward_outputs(data, x, layer)
        advance(n)
    rng = np.random.RandomState(seed)
    targets = [int(t) for t in data.targets.tolist()]
    per_block = max(1, BLOCK_VALUES // max(1, n * values))
    spec = data.method
    for first in range(0, samples, per_block):
        k = min(per_block, samples - first)
        inputs = (x[None] + draw(rng, (k, n, values))).astype(np.float32)  # Quantus: float32 + float64 noise
        before = done

        def on_chunk(images: int, _total: int, before: int = before) -> None:
            advance(before + images * per_map - done)

        maps = attribute(data.bundle, torch.from_numpy(inputs).view(k * n, *shape), spec.key, targets * k,
                         progress=on_chunk, **spec.resolved)
        outputs = None
        if with_outputs:
            outputs = forward_outputs(data, inputs.reshape(k * n, values), layer)
            advance(k * n)
        yield PerturbedBlock(first, inputs, maps.reshape(k, n, -1).astype(np.float64), outputs, base)


def flat_maps(data: MetricInput) -> np.ndarray:
    return np.asarray(data.maps, dtype=np.float64).reshape(len(data.maps), -1)


def collect(blocks: Iterator[PerturbedBlock], samples: int, n: int,
            objective: Callable[[PerturbedBlock], np.ndarray]) -> np.ndarray:
    """(samples, N): `objective(block)` (k, N) of every block, in sample order."""
    out = np.full((samples, n), np.nan)
    for block in blocks:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[block.first : block.first + len(block.inputs)] = objective(block)
    return out


def average_sensitivity(data: MetricInput, params: Mapping[str, Any]) -> np.ndarray:
    """(N,): mean over perturbations of ||map(x') - map(x)|| / ||map(x)||."""
    maps = flat_maps(data)
    norms = np.linalg.norm(maps, axis=1)
    samples = int(params["n_samples"])
    draw = radius_noise(params)
    ratios = collect(perturbed_blocks(data, draw, samples, int(params["seed"])), samples, len(maps),
                     lambda b: np.linalg.norm(maps[None] - b.maps, axis=2) / norms)
    with np.errstate(invalid="ignore"):
        return ratios.mean(axis=0)


def local_lipschitz(data: MetricInput, params: Mapping[str, Any]) -> np.ndarray:
    """(N,): max over perturbations of ||map(x') - map(x)||_2 / (||x' - x||_2 + 1e-10)."""
    normalise = normalise_by_max if bool(params["normalise"]) else (lambda maps: maps)
    maps = normalise(flat_maps(data))
    x = flat_inputs(data)
    samples = int(params["n_samples"])

    def objective(block: PerturbedBlock) -> np.ndarray:
        moved = np.linalg.norm(maps[None] - normalise(block.maps.reshape(-1, maps.shape[1])).reshape(block.maps.shape),
                               axis=2)
        return moved / (np.linalg.norm(x[None] - block.inputs, axis=2) + LIPSCHITZ_EPS)

    draw = std_noise(params)
    estimates = collect(perturbed_blocks(data, draw, samples, int(params["seed"])), samples, len(maps), objective)
    return nan_max(estimates)


def relative_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """||(before - after) / before|| over the last axis, a zero `before` replaced by 1e-6."""
    return np.linalg.norm((before - after) / (before + (before == 0) * EPS_MIN), axis=-1)


def at_least_eps(values: np.ndarray) -> np.ndarray:
    return values + (values == 0) * EPS_MIN


def relative_stabilities(data: MetricInput, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per score key, (N,): the max over the perturbations that keep the prediction of the
    map's relative change per relative change of the input, per change of the logits and
    per relative change of the representation layer's outputs (NaN without one)."""
    draw = interval_noise(params)
    maps, x = flat_maps(data), flat_inputs(data).astype(np.float64)
    samples, n = int(params["n_samples"]), len(maps)
    layer = representation_layer(data.bundle)
    ratios = {info.key: np.full((samples, n), np.nan) for info in RELATIVE_SCORES}
    for block in perturbed_blocks(data, draw, samples, int(params["seed"]), with_outputs=True, layer=layer):
        assert block.outputs is not None and block.base is not None
        k = len(block.inputs)
        logits, base = block.outputs.logits.reshape(k, n, -1), block.base.logits
        rows = slice(block.first, block.first + k)
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = relative_change(maps[None], block.maps)
            ratios[RELATIVE_INPUT.key][rows] = moved / at_least_eps(
                relative_change(x[None], block.inputs.astype(np.float64)))
            ratios[RELATIVE_OUTPUT.key][rows] = moved / at_least_eps(np.linalg.norm(base[None] - logits, axis=-1))
            if block.outputs.hidden is not None and block.base.hidden is not None:
                hidden = block.outputs.hidden.reshape(k, n, -1)
                ratios[RELATIVE_REPRESENTATION.key][rows] = moved / at_least_eps(
                    relative_change(block.base.hidden[None], hidden))
        flipped = logits.argmax(axis=-1) != base.argmax(axis=-1)[None]
        for values in ratios.values():
            values[rows][flipped] = np.nan
    return {key: nan_max(values) for key, values in ratios.items()}


def nan_max(values: np.ndarray) -> np.ndarray:
    """Max over axis 0 ignoring NaN; NaN where a column has no number."""
    finite = ~np.isnan(values).all(axis=0)
    out = np.full(values.shape[1], np.nan)
    out[finite] = np.nanmax(values[:, finite], axis=0)
    return out


def skipped_images(values: np.ndarray, reason: Callable[[int], str]) -> list[Skipped]:
    return [Skipped(i, reason(i)) for i in range(len(values)) if not np.isfinite(values[i])]


def map_reason(data: MetricInput) -> Callable[[int], str]:
    """Why an image has no score: its map is zero (no relative change), else undefined."""
    zero: np.ndarray = np.abs(flat_maps(data)).max(axis=1, initial=0.0) == 0
    return lambda i: ZERO_MAP if zero[i] else UNDEFINED


AGARWAL = ("Agarwal, Johnson, Pawelczyk, Krishna, Saxena, Zitnik, Lakkaraju. Rethinking stability for "
           "attribution-based explanations. ICLR 2022 PAIR2Struct workshop (arXiv:2203.06877).")
AVG_SENSITIVITY = value_info(
    "avg_sensitivity", "Average sensitivity", False,
    "Mean relative change of the map (Frobenius) over uniform input perturbations (Quantus AvgSensitivity).",
    "Yeh, Hsieh, Suggala, Inouye, Ravikumar. On the (in)fidelity and sensitivity of explanations. NeurIPS 2019.")
LOCAL_LIPSCHITZ = value_info(
    "local_lipschitz", "Local Lipschitz estimate", False,
    "Largest change of the max-normalised map per unit of input change (L2) over Gaussian input perturbations "
    "(Quantus LocalLipschitzEstimate).",
    "Alvarez-Melis, Jaakkola. On the robustness of interpretability methods. ICML WHI workshop 2018.")
RELATIVE_INPUT = value_info(
    "relative_input_stability", "Relative input stability", False,
    "Largest relative change of the map per relative change of the input, over perturbations that keep the "
    "prediction (Quantus RelativeInputStability).", AGARWAL)
RELATIVE_OUTPUT = value_info(
    "relative_output_stability", "Relative output stability", False,
    "Largest relative change of the map per change of the logits (L2), over perturbations that keep the prediction "
    "(Quantus RelativeOutputStability).", AGARWAL)
RELATIVE_REPRESENTATION = value_info(
    "relative_representation_stability", "Relative representation stability", False,
    "Largest relative change of the map per relative change of an internal layer's outputs (the model's CAM layer), "
    "over perturbations that keep the prediction (Quantus RelativeRepresentationStability).", AGARWAL)
RELATIVE_SCORES = (RELATIVE_INPUT, RELATIVE_OUTPUT, RELATIVE_REPRESENTATION)
RELATIVE_STABILITY_LABEL = "Relative stability"

SAMPLES = Param("n_samples", "Perturbations per image", 10, 1, 200, 1,
                help="Maps of the method per image (Quantus: nr_samples, default 200)")
SEED = Param("seed", "Random seed", 0, 0, 2**31 - 1, 1,
             help="Seeds numpy's RandomState for the noise, drawn in Quantus's order")


def first_perturbation(draw_of: Callable[[Mapping[str, Any]], NoiseDraw]
                       ) -> Callable[[MetricInput, Mapping[str, Any], int], Strip]:
    """A family's detail view: image `index` and its map beside its first perturbed input
    (the very one the metric drew, noise `draw_of(params)`) and the map the method gives it."""

    def detail(data: MetricInput, params: Mapping[str, Any], index: int) -> Strip:
        x = flat_inputs(data)
        noise = draw_of(params)(np.random.RandomState(int(params["seed"])), (1, *x.shape))[0, index]
        perturbed = torch.from_numpy((x[index] + noise).astype(np.float32)).view(1, *data.images.shape[1:])
        spec = data.method
        moved = attribute(data.bundle, perturbed, spec.key, [int(data.targets[index])], **spec.resolved)[0]
        original = data.images[index : index + 1].detach().cpu()
        pictures = data.bundle.to_display(torch.cat([original, original, perturbed, perturbed]))
        attribution = np.asarray(data.maps[index], dtype=np.float32)
        blank = np.full_like(attribution, np.nan)
        change = np.linalg.norm(moved - attribution) / max(float(np.linalg.norm(attribution)), 1e-12)
        return Strip(pictures, ("image", "map", "perturbed input (1st)", "its map"),
                     maps=np.stack([blank, attribution, blank, moved]),
                     note=f"{spec.label}: the first of {int(params['n_samples'])} perturbations; its map differs from "
                          f"the image's by {change:.1%} of that map's norm (Frobenius).")

    return detail


def radius_noise(params: Mapping[str, Any]) -> NoiseDraw:
    return uniform_noise(-float(params["noise_radius"]), float(params["noise_radius"]))


def std_noise(params: Mapping[str, Any]) -> NoiseDraw:
    return gaussian_noise(0.0, float(params["noise_std"]))


def interval_noise(params: Mapping[str, Any]) -> NoiseDraw:
    low, high = float(params["noise_low"]), float(params["noise_high"])
    if not high > low:
        raise ValueError(f"{RELATIVE_STABILITY_LABEL}: noise_high ({high}) must exceed noise_low ({low})")
    return uniform_noise(low, high)


def single(info: MetricInfo, score: Callable[[MetricInput, Mapping[str, Any]], np.ndarray]
           ) -> Callable[[MetricInput, Mapping[str, Any]], dict[str, Curves]]:
    """A family's `compute` from its per-image score."""

    def compute(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
        values = score(data, params)
        return {info.key: scalar_curves(info, data.method.ident, values, skipped_images(values, map_reason(data)))}

    return compute


def relative_stability_values(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    """Every relative score; an image is skipped when every perturbation flipped its
    prediction (a zero map divides by 1e-6, as in Quantus, and scores a number), and the
    representation score of a model without a CAM layer says so."""
    values = relative_stabilities(data, params)
    no_layer = representation_layer(data.bundle) is None

    def reason(key: str) -> Callable[[int], str]:
        return lambda i: NO_LAYER if no_layer and key == RELATIVE_REPRESENTATION.key else ALL_FLIPPED

    return {info.key: scalar_curves(info, data.method.ident, values[info.key],
                                    skipped_images(values[info.key], reason(info.key))) for info in RELATIVE_SCORES}


DETAIL_TITLE = "A perturbed input and its map"


def samples_of(params: Mapping[str, Any]) -> int:
    return int(params["n_samples"])


register_metric(Metric(
    key="avg_sensitivity", label="Average sensitivity", scores=(AVG_SENSITIVITY,),
    compute=single(AVG_SENSITIVITY, average_sensitivity), description=AVG_SENSITIVITY.description,
    params=(SAMPLES, Param("noise_radius", "Noise radius (input units)", 0.2, 0.0, 5.0, 0.01,
                           help="Half-width of the uniform noise added to every normalised input value "
                                "(Quantus: lower_bound=0.2)"), SEED),
    passes=lambda params, n: 0, maps_per_image=samples_of, page=ROBUSTNESS_PAGE,
    detail=first_perturbation(radius_noise), detail_title=DETAIL_TITLE))

register_metric(Metric(
    key="local_lipschitz", label="Local Lipschitz estimate", scores=(LOCAL_LIPSCHITZ,),
    compute=single(LOCAL_LIPSCHITZ, local_lipschitz), description=LOCAL_LIPSCHITZ.description,
    params=(SAMPLES, Param("noise_std", "Noise std (input units)", 0.1, 0.0, 5.0, 0.01,
                           help="Std of the Gaussian noise added to every normalised input value "
                                "(Quantus: perturb_std=0.1)"),
            Param("normalise", "Normalise maps by their maximum", True,
                  help="Divide each map by its largest |value| first (Quantus: normalise=True, by the batch's)"),
            SEED),
    passes=lambda params, n: 0, maps_per_image=samples_of, page=ROBUSTNESS_PAGE,
    detail=first_perturbation(std_noise), detail_title=DETAIL_TITLE))

register_metric(Metric(
    key="relative_stability", label=RELATIVE_STABILITY_LABEL, scores=RELATIVE_SCORES,
    compute=relative_stability_values,
    description="Relative input, output and representation stability (Agarwal et al. 2022): the largest relative "
                "change of the map per relative change of the input, per change of the logits and per relative change "
                "of the CAM layer's outputs, over perturbations that keep the prediction.",
    params=(SAMPLES,
            Param("noise_low", "Noise from (input units)", 0.02, -5.0, 5.0, 0.01,
                  help="Lower end of the uniform noise added to every normalised input value (Quantus: 0.02)"),
            Param("noise_high", "Noise to (input units)", 0.2, -5.0, 5.0, 0.01,
                  help="Upper end of the uniform noise (Quantus: 0.2); must exceed the lower end"),
            SEED),
    passes=lambda params, n: n * (1 + int(params["n_samples"])), maps_per_image=samples_of, page=ROBUSTNESS_PAGE,
    detail=first_perturbation(interval_noise), detail_title=DETAIL_TITLE))
