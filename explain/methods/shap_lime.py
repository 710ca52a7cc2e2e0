"""SHAP (the `shap` package) and LIME (`lime.lime_image`) under the common signature.

Each explains **one output**, the target class, never all of them: the model is wrapped
so that it returns only that column (an explainer asked about all 1,000 ImageNet
outputs spends 1,000 times the work; 472 s for one image on a 2-core machine).

What "absent" means is the same for all three by default: a **blurred copy of the
image** (Gaussian, sigma = `blur` x image side). So their values explain
f(x) - f(blurred x):
- SHAP gradient (`shap.GradientExplainer`, expected gradients): gradients of the target
  logit at random points between the background and the image, times (x - background).
  Background: the blurred image, or black / mean / white images.
- SHAP partition (`shap.PartitionExplainer`, image masker over a grid of cells whose
  hidden cells show the blurred image): Owen values over shap's hierarchy of
  axis-aligned image halves; they add up exactly to f(x) - f(blurred x).
- LIME: SLIC superpixels switched off (replaced by the blurred image, or by their
  own mean colour as in LIME's default), a weighted ridge fit of the target
  probability on which superpixels are on; each pixel gets its superpixel's weight.

Randomness (background choice and interpolation points, LIME's samples) comes from
the `seed` parameter; the global NumPy and torch states are restored afterwards.
Maps are summed over colour channels, like every other method.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from ..models.bundle import ModelBundle
from .captum_methods import reference_images, seeded
from .registry import Method, Param, register

OUTPUTS = ("logit", "probability")
SHAP_METHODS = ("shap_gradient", "shap_partition")  # what the SHAP summary page offers


def blur(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Gaussian blur of a batch (N, C, H, W) with sigma = `fraction` x the shorter side
    (reflect padding). fraction 0 returns the images unchanged."""
    side = min(x.shape[-2:])
    sigma = fraction * side
    if sigma <= 0:
        return x.clone()
    radius = min(math.ceil(3 * sigma), side - 1)
    return TF.gaussian_blur(x, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])


class TargetOutput(nn.Module):
    """The model reduced to one output column: the target class's logit or probability."""

    def __init__(self, model: nn.Module, target: int, output: str = "logit") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}")
        self.model, self.target, self.output = model, int(target), output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.output == "probability":
            out = out.softmax(dim=1)
        return out[:, self.target : self.target + 1]


def batched_numpy_model(bundle: ModelBundle, target: int, output: str):
    """f(images as NumPy (N, H, W, C)) -> (N, 1) NumPy array of the target output, evaluated
    `bundle.batch_size` images at a time without gradients: what LIME calls."""
    column = TargetOutput(bundle.model, target, output)

    @torch.no_grad()
    def f(images: np.ndarray) -> np.ndarray:
        batch = torch.as_tensor(np.asarray(images), dtype=torch.float32).permute(0, 3, 1, 2)
        outs = [column(chunk.to(bundle.device)).float().cpu() for chunk in batch.split(bundle.batch_size)]
        return torch.cat(outs).numpy().astype(np.float64)

    return f


# --- SHAP gradient (expected gradients) ---------------------------------------------

BACKGROUNDS = ("blurred image", "black, mean and white")


def gradient_background(bundle: ModelBundle, x: torch.Tensor, kind: str, blur_fraction: float) -> torch.Tensor:
    """Background set for one image (1, C, H, W): it depends only on the image and the
    settings, so a map never depends on which images share its batch."""
    if kind == "blurred image":
        return blur(x, blur_fraction)
    if kind == "black, mean and white":
        return reference_images(bundle, x)
    raise ValueError(f"background must be one of {BACKGROUNDS}")


def _shap_gradient(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    import shap

    maps = []
    x = x.detach()
    for xi, ti in zip(x.split(1), target.tolist(), strict=True):
        with seeded(int(p["seed"]), x.device):  # per image: a map does not depend on its batch mates
            background = gradient_background(bundle, xi, p["background"], p["blur"])
            explainer = shap.GradientExplainer(
                TargetOutput(bundle.model, ti), background, batch_size=bundle.batch_size,
                local_smoothing=float(p["local_smoothing"]),
            )
            values = explainer.shap_values(xi, nsamples=int(p["n_samples"]), rseed=int(p["seed"]))
            maps.append(torch.as_tensor(np.asarray(values).reshape(xi.shape), dtype=torch.float32))
    return torch.cat(maps)


# --- SHAP partition (Owen values, blurred-image masker) ------------------------------

def block_index(size: int, blocks: int) -> np.ndarray:
    """For each of `size` pixels, the index of the near-equal block (of `blocks`) it lies in."""
    return np.arange(size) * blocks // size


def partition_shap_values(
    bundle: ModelBundle, x: torch.Tensor, target: int, *, max_evals: int, blur_fraction: float,
    output: str = "logit", mask_side: int = 56,
) -> tuple[np.ndarray, float, float]:
    """Owen values of one image (1, C, H, W) for `target`, spread evenly over the pixels
    of each masking cell: (H, W). Also f(x) and f(fully masked) = f(blurred x); the
    values add up to their difference.

    The explained input is a (h, w, 1) presence mask (h, w = `mask_side` capped at the
    image size) that shap's Image masker sets to 0 where hidden; the model sees
    mask * x + (1 - mask) * blur(x), i.e. a blurring masker (shap's own "blur(k,k)"
    needs OpenCV). Masking cells instead of the 150,528 pixel channels of a 224 x 224
    image costs shap ~50 times less bookkeeping per evaluation, and a budget of a few
    hundred evaluations never splits the image that finely anyway.
    """
    import shap

    x = x.detach()
    height, width = x.shape[-2:]
    h, w = min(int(mask_side), height), min(int(mask_side), width)
    rows, cols = block_index(height, h), block_index(width, w)
    blurred = blur(x, blur_fraction)
    column = TargetOutput(bundle.model, target, output)

    @torch.no_grad()
    def f(masks: np.ndarray) -> np.ndarray:
        keep_cells = torch.as_tensor(np.asarray(masks), dtype=torch.float32)[..., 0]
        outs = []
        for chunk in keep_cells.split(bundle.batch_size):
            keep = chunk[:, rows][:, :, cols].to(x.device)[:, None]
            outs.append(column(keep * x + (1 - keep) * blurred).float().cpu())
        return torch.cat(outs).numpy().astype(np.float64)

    masker = shap.maskers.Image(np.zeros((h, w, 1), dtype=np.float32))
    explainer = shap.PartitionExplainer(f, masker)
    present = np.ones((1, h, w, 1), dtype=np.float32)
    result = explainer(present, max_evals=int(max_evals), batch_size=bundle.batch_size, silent=True)
    cell_values = np.asarray(result.values).reshape(h, w)
    pixels_per_cell = np.bincount(rows, minlength=h)[:, None] * np.bincount(cols, minlength=w)[None, :]
    values = (cell_values / pixels_per_cell)[rows][:, cols]
    return values, float(f(present)[0, 0]), float(np.asarray(result.base_values).ravel()[0])


def _shap_partition(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    maps = []
    for xi, ti in zip(x.split(1), target.tolist(), strict=True):
        values, _, _ = partition_shap_values(
            bundle,
            xi,
            ti,
            max_evals=p["max_evals"],
            blur_fraction=p["blur"],
            output=p["output"],
            mask_side=p["mask_side"],
        )
        maps.append(torch.as_tensor(values, dtype=torch.float32)[None])
    return torch.cat(maps)


# --- LIME ------------------------------------------------------------------------------

HIDES = ("blurred image", "superpixel mean colour")


def superpixels(image_01: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels of an (H, W, 3) image in [0, 1] (smoothed with sigma 1 px first),
    labels 0..K-1. On pure noise SLIC can merge everything into one segment; then a
    regular grid of about `n_segments` squares is used instead, so LIME always has
    regions to switch off."""
    from skimage.segmentation import slic

    segments = slic(image_01, n_segments=int(n_segments), compactness=float(compactness), sigma=1.0,
                    start_label=0, channel_axis=-1)
    if segments.max() >= 1:
        return segments
    h, w = image_01.shape[:2]
    side = max(1, round(math.sqrt(h * w / n_segments)))
    cols = math.ceil(w / side)
    return (np.arange(h)[:, None] // side) * cols + np.arange(w)[None, :] // side


def lime_segment_weights(
    bundle: ModelBundle, x: torch.Tensor, target: int, *, n_samples: int, n_segments: int, compactness: float,
    hide: str, blur_fraction: float, output: str, seed: int,
) -> tuple[np.ndarray, dict[int, float]]:
    """LIME on one image (1, C, H, W): the superpixel labels (H, W) and each
    superpixel's weight for the target output."""
    from lime import lime_image

    if hide not in HIDES:
        raise ValueError(f"hide must be one of {HIDES}")
    x = x.detach()
    display = bundle.to_display(x.cpu())[0].astype(np.float64) / 255.0
    segments = superpixels(display, n_segments, compactness)
    image = x[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)
    f = batched_numpy_model(bundle, target, output)
    if hide == "blurred image":
        # LIME puts hide_color where a superpixel is off. Explaining d = x - blur(x) with
        # hide_color 0 and adding blur(x) back gives x where on and blur(x) where off.
        blurred = blur(x, blur_fraction)[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)
        lime_input, hide_color = image - blurred, 0.0

        def classifier(images: np.ndarray) -> np.ndarray:
            return f(images + blurred)
    else:
        lime_input, hide_color, classifier = image, None, f
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    explanation = explainer.explain_instance(
        lime_input, classifier, labels=(0,), top_labels=None, hide_color=hide_color, num_samples=int(n_samples),
        batch_size=bundle.batch_size, segmentation_fn=lambda _: segments, random_seed=seed,
    )
    return segments, {int(k): float(w) for k, w in explanation.local_exp[0]}


def _lime(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    maps = []
    for xi, ti in zip(x.split(1), target.tolist(), strict=True):
        segments, weights = lime_segment_weights(
            bundle, xi, ti, n_samples=p["n_samples"], n_segments=p["n_segments"], compactness=p["compactness"],
            hide=p["hide"], blur_fraction=p["blur"], output=p["output"], seed=int(p["seed"]),
        )
        lookup = np.zeros(int(segments.max()) + 1, dtype=np.float32)
        for k, w in weights.items():
            lookup[k] = w
        maps.append(torch.as_tensor(lookup[segments])[None])
    return torch.cat(maps)


BLUR = Param("blur", "Blur sigma (fraction of image side)", 0.08, 0.01, 0.5, 0.01,
             help="What 'absent' means: pixels come from the image blurred with this Gaussian sigma.")
SEED = Param("seed", "Random seed", 0, 0, 2**31 - 1, 1)

register(
    Method(
        key="shap_gradient",
        label="SHAP (gradient)",
        compute=_shap_gradient,
        description=(
            "shap.GradientExplainer (expected gradients) of the target logit: mean over samples of "
            "gradient x (x - background) at random points between a background image and the input; "
            "summed over channels. Adds up to f(x) - E[f(background)] in expectation."
        ),
        reference="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions; Erion et al. 2021 "
                  "(expected gradients)",
        params=(
            Param(
                "n_samples",
                "Samples",
                16,
                4,
                2048,
                4,
                help="Gradient evaluations per image; more is less noisy and slower.",
            ),
            Param("background", "Background", BACKGROUNDS[0], choices=BACKGROUNDS),
            BLUR,
            Param(
                "local_smoothing",
                "Local smoothing (noise std)",
                0.0,
                0.0,
                1.0,
                0.01,
                help="Gaussian noise added to the input at each sample (SmoothGrad-like).",
            ),
            SEED,
        ),
        evals_per_image=lambda p, size: int(p["n_samples"]),
    )
)
register(Method(
    key="shap_partition",
    label="SHAP (partition, blur)",
    compute=_shap_partition,
    description=(
        "shap.PartitionExplainer with a blurring masker: Owen values over a hierarchy of image halves "
        "(down to a grid of mask_side x mask_side cells); hidden cells show the blurred image; a cell's "
        "value is spread evenly over its pixels. Sums exactly to f(x) - f(blurred x)."
    ),
    reference="Lundberg & Lee 2017; shap PartitionExplainer (Owen values)",
    params=(
        Param("max_evals", "Model evaluations", 200, 50, 20000, 50,
              help="Masked images evaluated per image; more gives finer maps."),
        Param("mask_side", "Masking grid (cells per side)", 56, 4, 512, 1,
              help="The finest regions shap may hide; capped at the image size (the image's pixels)."),
        BLUR,
        Param("output", "Explained output", OUTPUTS[0], choices=OUTPUTS),
    ),
    family="perturbation",
    evals_per_image=lambda p, size: int(p["max_evals"]),
))
register(
    Method(
        key="lime",
        label="LIME",
        compute=_lime,
        description=(
            "lime.lime_image: SLIC superpixels randomly switched off, a locally weighted ridge fit of the "
            "target output on which superpixels are on; each pixel shows its superpixel's weight."
        ),
        reference='Ribeiro et al. 2016, "Why Should I Trust You?"',
        params=(
            Param(
                "n_samples",
                "Samples",
                200,
                20,
                10000,
                20,
                help="Perturbed images per image (about 5 per superpixel or more).",
            ),
            Param("n_segments", "Superpixels (approx.)", 40, 4, 500, 1),
            Param("compactness", "SLIC compactness", 10.0, 0.1, 100.0, 0.1),
            Param("hide", "Switched-off superpixels show", HIDES[0], choices=HIDES),
            BLUR,
            Param("output", "Explained output", OUTPUTS[1], choices=OUTPUTS),
            SEED,
        ),
        family="perturbation",
        evals_per_image=lambda p, size: int(p["n_samples"]),
    )
)
