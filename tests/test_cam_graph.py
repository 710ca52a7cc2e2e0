"""CAM methods record the autograd graph from the CAM layer up only, with the same maps
as when the whole network was recorded."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import explain
from tests.synthetic import bundle_of


def reference_gradcam(bundle: explain.ModelBundle, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Grad-CAM as before: the input requires grad, autograd records the whole network."""
    store = {}
    handle = bundle.model.get_submodule(bundle.cam_layer).register_forward_hook(
        lambda m, i, o: store.setdefault("a", o)
    )
    try:
        x = x.clone().requires_grad_(True)
        logits = bundle.model(x)
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), store["a"])
    finally:
        handle.remove()
    cam = torch.relu(torch.einsum("nk,nkhw->nhw", grad.mean(dim=(2, 3)), store["a"].detach()))
    return torch.nn.functional.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[
        :, 0
    ].numpy()


def test_gradcam_records_only_the_head_and_gives_the_same_maps(default_bundle):
    images = default_bundle.preprocess_batch([explain.load_sample(n) for n in ("chelsea", "coffee", "astronaut")])
    recorded = []
    stem = default_bundle.model._conv_stem.register_forward_hook(lambda m, i, o: recorded.append(o.requires_grad))
    try:
        maps = explain.attribute(default_bundle, images, "gradcam")
    finally:
        stem.remove()
    assert recorded and not any(recorded)  # top-1 pass and Grad-CAM pass: no graph below the CAM layer
    expected = reference_gradcam(default_bundle, images, default_bundle.logits(images).argmax(1))
    np.testing.assert_allclose(maps, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))


class InplaceAfterLayer(nn.Module):
    """conv (the CAM layer) -> ReLU(inplace=True) -> GAP -> linear, as in VGG's features."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU(inplace=inplace)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


def test_gradcam_on_a_layer_followed_by_an_inplace_relu():
    bundle = bundle_of(InplaceAfterLayer(), 8, 3, cam_layer="conv")
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    maps = explain.attribute(bundle, x, "gradcam", target=1)
    twin = bundle_of(InplaceAfterLayer(inplace=False), 8, 3, cam_layer="conv")  # same weights (same seed)
    expected = reference_gradcam(twin, x, torch.tensor([1, 1]))
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
