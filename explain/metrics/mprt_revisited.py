"""Model parameter randomisation, revisited (Hedström, Weber, Lapuschkin, Höhne 2023,
"Sanity checks revisited"): Quantus 0.6.0's `EfficientMPRT` and `SmoothMPRT`, on the
layers, copies and seeded re-initialisation of `randomisation` (no second randomiser).

- Efficient MPRT (eMPRT): how much more complex the map gets when the whole model is
  randomised: (H(e') - H(e)) / H(e), H the discrete entropy of the map's histogram
  (`n_bins` equal bins over the map's own range, Quantus's `discrete_entropy` with its
  default 100 bins, signed values as Quantus's default `abs=False`), e the trained model's
  map, e' the map on the copy with every layer re-initialised. Higher is better: a map
  that explains the model falls apart into noise. A second score holds it against the
  model's own change: (H(e') / H(e)) / (H(f'(x)) / H(f(x))), H(f(x)) the entropy of the
  softmax output (Quantus's `scores_delta_explanation_vs_models`).
- Smooth MPRT (sMPRT): cascading randomisation (the logits down, `max_steps` cut points)
  with every map denoised as Quantus does: the mean of the method's maps of `n_samples`
  copies of the image, all but the last with Gaussian noise of std `noise` x (max - min)
  of the image added; y = Spearman's rho of the absolute denoised maps of the trained and
  the randomised model; the score is the area under that curve (lower is better), as the
  cascading randomisation's.

Where this deliberately differs from Quantus:
- Re-initialisation: each layer is drawn by PyTorch's default rules from a generator
  seeded by (seed, the layer's index) (`randomisation.layer_generator`); Quantus re-seeds
  torch's global generator with seed + 1 before each layer's `reset_parameters`, so layers
  of one shape get the same weights, and other threads' draws move. The agreement tests
  hand Quantus our randomised models.
- Layers: modules with parameters of their own in forward order, a normalisation joined
  to its layer (`randomisation`); Quantus takes the modules with `reset_parameters` in
  declaration order, bottom-up by default. For eMPRT only the fully randomised model
  counts, the same in both; sMPRT runs top-down (Quantus's `layer_order="top_down"`) over
  at most `max_steps` steps instead of every layer.
- eMPRT uses the maps already computed for the trained model (Quantus recomputes them:
  the same for a deterministic method).

Noise for sMPRT is drawn from `numpy.random.RandomState(seed)` in Quantus's order (for
each model, the trained one first, for each sample, one draw of the batch's shape), so
the same seed gives Quantus's draws. Costs: eMPRT one map per image and two forward
passes (the outputs of both models); sMPRT `n_samples` maps per image and model, sent
through the method many noisy copies at a time (`batching.forward_batch_size`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from scipy.stats import entropy

from ..methods.registry import MethodSpec, Param, attribute, get_method
from ..models.bundle import ModelBundle
from .base import Curves, MetricInfo, Skipped
from .batching import forward_batch_size
from .randomisation import SANITY_PAGE, Step, fully_randomised_bundle, randomised_bundles
from .registry import Metric, MetricInput, Strip, register_metric
from .similarity import paired_rank_correlation

HEDSTROM = ("Hedström, Weber, Lapuschkin, Höhne. Sanity checks revisited: an exploration to repair the model "
            "parameter randomisation test. XAI in Action workshop, NeurIPS 2023.")

EMPRT = MetricInfo(
    key="emprt",
    name="Efficient MPRT",
    higher_is_better=True,
    x_label="",
    y_label="relative rise of the map's entropy",
    description="Relative rise of the map's histogram entropy from the trained to the fully randomised model "
                "(Quantus EfficientMPRT); higher is better.",
    reference=HEDSTROM,
    score="mean_value",
)
EMPRT_MODEL = MetricInfo(
    key="emprt_vs_model",
    name="Efficient MPRT against the model",
    higher_is_better=True,
    x_label="",
    y_label="map's entropy ratio / output's entropy ratio",
    description="The ratio of the map's entropies (randomised / trained model) over the same ratio of the model's "
                "softmax outputs: how much the map changes for how much the model does; higher is better.",
    reference=HEDSTROM,
    score="mean_value",
)
SMPRT = MetricInfo(
    key="smooth_mprt",
    name="Smooth MPRT",
    higher_is_better=False,
    x_label="fraction of layers randomised (from the logits down)",
    y_label="Spearman |denoised map| to the trained model's",
    description="Spearman rank correlation between the denoised (noise-averaged) absolute maps of the trained and the "
                "cascadingly randomised model (Quantus SmoothMPRT); lower area is better.",
    reference=HEDSTROM,
)

FLAT_MAP = "the trained model's map is constant (entropy 0): no rise to measure"
CERTAIN_MODEL = "the trained model's output is certain (entropy 0)"


def discrete_entropy(maps: np.ndarray, n_bins: int) -> np.ndarray:
    """(N,) entropy of each map's histogram over `n_bins` equal bins spanning its own range
    (a constant map: one bin, 0): `np.histogram`'s binning, rounding corrections included,
    for every map at once, in the maps' own float type as numpy bins them."""
    values = np.asarray(maps).reshape(len(maps), -1)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    low, high = values.min(axis=1), values.max(axis=1)
    flat = low == high
    low, high = np.where(flat, low - 0.5, low), np.where(flat, high + 0.5, high)
    edges = np.linspace(low, high, n_bins + 1, axis=1)
    index = ((values - low[:, None]) / (high - low)[:, None] * n_bins).astype(np.intp)
    index[index == n_bins] -= 1
    rows = np.arange(len(values))[:, None]
    index -= values < edges[rows, index]
    index += (values >= edges[rows, index + 1]) & (index != n_bins - 1)
    counts = np.bincount((index + rows * n_bins).ravel(), minlength=len(values) * n_bins)
    return np.asarray(entropy(counts.reshape(len(values), n_bins), axis=1), dtype=np.float64)


def output_entropy(bundle: ModelBundle, images: torch.Tensor) -> np.ndarray:
    """(N,) entropy of the model's softmax output for each image, in device batches."""
    size = forward_batch_size(bundle, tuple(images.shape[1:]))
    outputs = []
    with bundle.lock, torch.inference_mode():
        for chunk in images.split(size):
            outputs.append(bundle.model(chunk.to(bundle.device, torch.float32)).float().softmax(dim=1).cpu())
    return np.asarray(entropy(torch.cat(outputs).double().numpy(), axis=1), dtype=np.float64)


def map_progress(data: MetricInput, before: int, total: int) -> Callable[[int, int], None]:
    """`attribute`'s progress (maps done of a call) as the metric's passes, `before` done already."""

    def progress(done: int, n: int) -> None:
        if data.progress is not None:
            data.progress(before + done * data.passes_per_map, total)

    return progress


@dataclasses.dataclass(frozen=True)
class EfficientResult:
    """Per image: the entropies of both maps and both models' outputs."""

    map_trained: np.ndarray
    map_random: np.ndarray
    output_trained: np.ndarray
    output_random: np.ndarray
    random_maps: np.ndarray


def efficient_mprt(data: MetricInput, params: Mapping[str, Any]) -> EfficientResult:
    """The entropies eMPRT compares, for every image of the batch; progress in model passes."""
    spec = data.method
    get_method(spec.key)  # the map on the randomised model needs the method itself
    n = data.images.shape[0]
    total = 2 * n + n * data.passes_per_map
    random_bundle = fully_randomised_bundle(data.bundle, data.images[:1], int(params["seed"]))
    trained_output = output_entropy(data.bundle, data.images)
    random_output = output_entropy(random_bundle, data.images)
    random_maps = attribute(random_bundle, data.images, spec.key, data.targets.tolist(),
                            progress=map_progress(data, 2 * n, total), **spec.resolved)
    bins = int(params["n_bins"])
    return EfficientResult(discrete_entropy(data.maps, bins), discrete_entropy(random_maps, bins),
                           trained_output, random_output, random_maps)


def efficient_scores(result: EfficientResult) -> tuple[np.ndarray, np.ndarray]:
    """(eMPRT, eMPRT against the model) per image; NaN where a denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = (result.map_random - result.map_trained) / result.map_trained
        model_ratio = result.output_random / result.output_trained
        against_model = (result.map_random / result.map_trained) / model_ratio
    undefined = result.map_trained == 0
    return np.where(undefined, np.nan, rise), np.where(undefined | (result.output_trained == 0), np.nan, against_model)


def scalar_curves(info: MetricInfo, method: MethodSpec, values: np.ndarray, reasons: list[str | None]) -> Curves:
    """One value per image as `Curves`, the images with a reason left out."""
    kept = tuple(i for i, reason in enumerate(reasons) if reason is None)
    skipped = tuple(Skipped(i, reason) for i, reason in enumerate(reasons) if reason is not None)
    curves = values[list(kept)][:, None] if kept else np.zeros((0, 1))
    return Curves(info, method.ident, np.zeros(1), curves, kept=kept, skipped=skipped)


def efficient_curves(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    result = efficient_mprt(data, params)
    rise, against_model = efficient_scores(result)
    flat = [FLAT_MAP if h == 0 else None for h in result.map_trained]
    certain = [reason or (CERTAIN_MODEL if h == 0 else None) for reason, h in zip(flat, result.output_trained,
                                                                                    strict=True)]
    return {EMPRT.key: scalar_curves(EMPRT, data.method, rise, flat),
            EMPRT_MODEL.key: scalar_curves(EMPRT_MODEL, data.method, against_model, certain)}


def efficient_strip(data: MetricInput, params: Mapping[str, Any], index: int) -> Strip:
    """Image `index`, its map on the trained model and on the fully randomised one, with their entropies."""
    one = dataclasses.replace(data, images=data.images[index : index + 1], maps=data.maps[index : index + 1],
                              targets=data.targets[index : index + 1], progress=None)
    result = efficient_mprt(one, params)
    picture = data.bundle.to_display(one.images)[0]
    maps = np.stack([np.full(data.maps.shape[1:], np.nan), data.maps[index], result.random_maps[0]])
    captions = ("image", f"trained model (entropy {result.map_trained[0]:.2f})",
                f"fully randomised (entropy {result.map_random[0]:.2f})")
    return Strip(np.stack([picture] * 3), captions, maps=maps,
                 note=f"{data.method.label}: the map's histogram entropy ({int(params['n_bins'])} bins) should rise "
                      "when every layer is re-initialised; each map scaled to its own range.")


def noisy_copies(images: np.ndarray, noise: float, draws: np.random.RandomState, samples: range,
                 n_samples: int) -> np.ndarray:
    """(len(samples) x N, C, H, W) float32: the images with Quantus's noise for each sample
    index (the last sample, n_samples - 1, without noise), drawn in order from `draws`."""
    std = noise * (images.max(axis=(1, 2, 3), keepdims=True) - images.min(axis=(1, 2, 3), keepdims=True))
    copies = [images + (draws.randn(*images.shape) * std if k < n_samples - 1 else np.zeros_like(images))
              for k in samples]
    return np.concatenate(copies).astype(np.float32)


def denoised_maps(bundle: ModelBundle, images: torch.Tensor, targets: list[int], spec: MethodSpec, noise: float,
                  n_samples: int, draws: np.random.RandomState,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(N, H, W) float32: the mean of the method's maps over `n_samples` noisy copies of
    each image (summed in Quantus's order), many copies per call of the method."""
    x = images.detach().cpu().numpy().astype(np.float32, copy=False)
    n = x.shape[0]
    per_call = max(1, min(n_samples, forward_batch_size(bundle, tuple(x.shape[1:])) // n))
    total = n * n_samples
    mean: np.ndarray | None = None
    for start in range(0, n_samples, per_call):
        samples = range(start, min(start + per_call, n_samples))
        batch = torch.from_numpy(noisy_copies(x, noise, draws, samples, n_samples)).to(images.device)

        def chunk_progress(done: int, count: int, before: int = start * n) -> None:
            if progress is not None:
                progress(before + done, total)

        maps = attribute(bundle, batch, spec.key, targets * len(samples), progress=chunk_progress, **spec.resolved)
        for sample in maps.reshape(len(samples), n, *maps.shape[1:]):
            mean = sample / n_samples if mean is None else mean + sample / n_samples
    assert mean is not None
    return mean


def smooth_steps(data: MetricInput, params: Mapping[str, Any],
                 rows: slice = slice(None)) -> Iterator[tuple[Step | None, np.ndarray]]:
    """The denoised maps of the images `rows`: the trained model's (step None), then each
    cascading step's, drawing the noise in Quantus's order; progress in model passes."""
    spec = data.method
    get_method(spec.key)
    images, targets = data.images[rows], data.targets[rows].tolist()
    samples, steps = int(params["n_samples"]), int(params["max_steps"])
    noise, seed = float(params["noise"]), int(params["seed"])
    total = (steps + 1) * len(targets) * samples * data.passes_per_map
    draws = np.random.RandomState(seed)
    done = 0

    def denoise(bundle: ModelBundle) -> np.ndarray:
        nonlocal done
        maps = denoised_maps(bundle, images, targets, spec, noise, samples, draws, map_progress(data, done, total))
        done += len(targets) * samples * data.passes_per_map
        return maps

    yield None, denoise(data.bundle)
    for step, random_bundle in randomised_bundles(data.bundle, images[:1], "cascading", steps, seed):
        yield step, denoise(random_bundle)
    if data.progress is not None:
        data.progress(total, total)  # fewer layers than steps: the run ends early


def smooth_curves(data: MetricInput, params: Mapping[str, Any]) -> dict[str, Curves]:
    """One curve per image: 1 at the trained model, then each step's Spearman |denoised map|."""
    x, labels, columns = [0.0], ["trained model"], [np.ones(data.images.shape[0])]
    trained: np.ndarray | None = None
    for step, maps in smooth_steps(data, params):
        flat = np.abs(maps.reshape(len(maps), -1).astype(np.float64))
        if step is None:
            trained = flat
            continue
        assert trained is not None
        columns.append(paired_rank_correlation(trained, flat))
        x.append(step.x)
        labels.append(step.label)
    return {SMPRT.key: Curves(SMPRT, data.method.ident, np.array(x), np.column_stack(columns),
                              x_labels=tuple(labels))}


def smooth_strip(data: MetricInput, params: Mapping[str, Any], index: int) -> Strip:
    """Image `index`'s denoised map on the trained model and after each cascading step."""
    quiet = dataclasses.replace(data, progress=None)
    maps, captions = [], []
    for step, denoised in smooth_steps(quiet, params, slice(index, index + 1)):
        maps.append(denoised[0])
        captions.append("trained model" if step is None else f"up to {step.label}")
    picture = data.bundle.to_display(data.images[index : index + 1])[0]
    return Strip(np.stack([picture] * len(maps)), tuple(captions), maps=np.stack(maps),
                 note=f"{data.method.label}: each map the mean over {int(params['n_samples'])} noisy copies of the "
                      "image (drawn for this image alone), scaled to its own range.")


SEED = Param("seed", "Random seed", 0, 0, 2**31 - 1, 1, help="Seeds the re-initialised weights (and sMPRT's noise)")

register_metric(Metric(
    key="efficient_mprt",
    label="Efficient MPRT",
    scores=(EMPRT, EMPRT_MODEL),
    compute=efficient_curves,
    description="Every layer of a copy of the model is re-initialised and the map recomputed; the score is the "
                "relative rise of the map's histogram entropy (a map that explains the model turns to noise), also "
                "against the rise of the model's output entropy.",
    params=(Param("n_bins", "Histogram bins", 100, 2, 1000, 1,
                  help="Equal bins over each map's range for its entropy (Quantus: 100)"), SEED),
    passes=lambda params, n: 2 * n,
    maps_per_image=lambda params: 1,
    detail=efficient_strip,
    detail_title="The map before and after randomising every layer",
    page=SANITY_PAGE,
))

register_metric(Metric(
    key="smooth_mprt",
    label="Smooth MPRT",
    scores=(SMPRT,),
    compute=smooth_curves,
    description="Cascading model randomisation with each map denoised: the mean of the method's maps over noisy "
                "copies of the image; y = Spearman rank correlation of the absolute denoised maps to the trained "
                "model's.",
    params=(
        Param("n_samples", "Noisy copies per map", 10, 1, 100, 1,
              help="Maps averaged into each denoised map, the last of the clean image (Quantus: 50)"),
        Param("noise", "Noise (fraction of the range)", 0.1, 0.0, 1.0, 0.01,
              help="Std of the Gaussian noise, as a fraction of the image's max - min (Quantus: 0.1)"),
        Param("max_steps", "Randomisation steps (at most)", 4, 1, 50, 1,
              help="Cut points spaced evenly over the layers from the output"),
        SEED,
    ),
    passes=lambda params, n: 0,
    maps_per_image=lambda params: int(params["n_samples"]) * (int(params["max_steps"]) + 1),
    detail=smooth_strip,
    detail_title="The denoised map as the layers are randomised",
    page=SANITY_PAGE,
))
