"""XRAI (Kapishnikov et al. 2019) through the PAIR `saliency` package.

`saliency.core.XRAI` over-segments the image (Felzenszwalb at six scales, dilated)
and ranks the regions greedily by their attribution density. Its attribution comes
from the project's own batched Integrated Gradients (Captum, device-sized batches),
passed as XRAI's precomputed `base_attribution`: IG from a black and from a white
image (as in the paper), averaged; XRAI reduces channels by their maximum. The
segmentation sees the image's pixel values in [0, 1], not the normalised tensor.
Map: each pixel carries its region's attribution density, in rank order.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from saliency.core import XRAI, XRAIParameters

from ..models.bundle import ModelBundle
from .captum_methods import integrated_gradients, reference_images
from .registry import Method, Param, register


def xrai_maps(images: np.ndarray, attributions: np.ndarray, algorithm: str) -> np.ndarray:
    """PAIR XRAI maps (N, H, W) for display images (N, H, W, 3) in [0, 1] and their
    attributions (N, H, W, 3), Felzenszwalb segments computed by `saliency` itself."""
    explainer = XRAI()
    parameters = XRAIParameters(algorithm=algorithm)
    return np.stack([
        explainer.GetMask(image, None, base_attribution=attribution, extra_parameters=parameters)
        for image, attribution in zip(images, attributions, strict=True)
    ]).astype(np.float32)


def xrai_base_attribution(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Mean of the Integrated Gradients from the black and from the white image, (N, C, H, W)."""
    black, _, white = reference_images(bundle, x)
    return torch.stack([
        integrated_gradients(bundle, x, target, baseline.expand_as(x), n_steps, "gausslegendre")
        for baseline in (black, white)
    ]).mean(dim=0)


def _xrai(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    attribution = xrai_base_attribution(bundle, x, target, int(p["n_steps"]))
    mean = torch.tensor(bundle.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std, device=x.device).view(1, -1, 1, 1)
    images = (x.detach() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().double().numpy()
    maps = xrai_maps(images, attribution.detach().permute(0, 2, 3, 1).cpu().double().numpy(), p["algorithm"])
    return torch.from_numpy(maps).to(x.device)


register(Method(
    key="xrai",
    label="XRAI",
    compute=_xrai,
    description=(
        "Image regions (Felzenszwalb segments at six scales) ranked greedily by their Integrated-Gradients density "
        "(IG from black and from white, averaged); each pixel shows its region's density (PAIR saliency)."
    ),
    reference="Kapishnikov et al. 2019, XRAI: Better Attributions Through Regions",
    params=(
        Param("n_steps", "Integration steps per baseline", 32, 2, 512, 1),
        Param("algorithm", "XRAI algorithm", "full", choices=("full", "fast"),
              help="full: the paper's greedy search; fast: PAIR's faster approximation."),
    ),
    family="region",
    evals_per_image=lambda p, size: 2 * int(p["n_steps"]),
    batched_internally=True,
))
