"""The CAM family against closed forms on small models and against pytorch-grad-cam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

import explain
from tests.synthetic import PatchCNN, bundle_of, patch_image


@pytest.fixture(scope="module")
def patch_case():
    """PatchCNN, whose class-1 logit is 4 x the spatial mean of channel 0 of its CAM layer:
    G_0 = 4 / (h w) everywhere and G_1..3 = 0. The CAM layer keeps the 32 x 32 input size."""
    model = PatchCNN()
    bundle = bundle_of(model, 32, 2, cam_layer="features", linear_head="fc")
    x = torch.cat([patch_image(seed=0), patch_image(patch=(20, 28, 2, 10), seed=1)])
    with torch.no_grad():
        features = model.features(model.conv2(model.relu1(model.conv1(x))))
    return bundle, x, features


def test_gradient_weighted_variants_match_their_closed_forms(patch_case):
    """With G_0 = c = 4 / (h w) and no other gradient:
    Grad-CAM w_0 = c; XGrad-CAM w_0 = sum_ij (A_ij / sum A) c = c; Layer-CAM w_0ij = ReLU(c) = c;
    Grad-CAM++ alpha = c^2 / (2 c^2 + S c^3) = 1 / (2 + S c), so w_0 = h w c / (2 + S c)."""
    bundle, x, features = patch_case
    a0 = features[:, 0].numpy()
    c = 4.0 / a0[0].size
    for method in ("gradcam", "xgradcam", "layercam"):
        np.testing.assert_allclose(
            explain.attribute(bundle, x, method, target=1), c * a0, rtol=1e-5, atol=1e-7, err_msg=method
        )
    s = a0.reshape(2, -1).sum(1)[:, None, None]
    expected = a0[0].size * c / (2 + s * c) * a0
    np.testing.assert_allclose(
        explain.attribute(bundle, x, "gradcam_plusplus", target=1), expected, rtol=1e-5, atol=1e-7
    )


def test_scorecam_weights_are_probability_gains_of_the_masked_image(patch_case):
    """w_k = p_1(x * H_k) - p_1(0), H_k = A_k scaled to [0, 1] (no upsampling here); the
    constant channel 3 weighs 0, so scoring 3 channels or all gives the same map."""
    bundle, x, features = patch_case
    model = bundle.model
    with torch.no_grad():
        baseline = model(torch.zeros(1, 3, 32, 32)).softmax(1)[0, 1]
        expected = []
        for xi, a in zip(x, features, strict=True):
            low, high = a.amin(dim=(1, 2), keepdim=True), a.amax(dim=(1, 2), keepdim=True)
            masks = torch.where(high > low, (a - low) / (high - low).clamp_min(1e-12), torch.zeros_like(a))
            weights = model(xi[None] * masks[:, None]).softmax(1)[:, 1] - baseline
            expected.append(F.relu((weights[:, None, None] * a).sum(0)))
    maps = explain.attribute(bundle, x, "scorecam", target=1)
    np.testing.assert_allclose(maps, torch.stack(expected).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(explain.attribute(bundle, x, "scorecam", target=1, max_channels=3), maps)


class RankOne(nn.Module):
    """CAM layer A_k = a_k * x_0 (a 1 x 1 convolution of the red channel), a rank-one
    feature map: its first principal component is a, and Eigen-CAM is ReLU(|a| (x_0 - mean x_0))."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 3, 1, bias=False)
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([1.0, 2.0, 2.0]).view(3, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x[:, :1]).mean(dim=(2, 3)))


def test_eigencam_of_a_rank_one_layer_is_the_centred_map_with_a_fixed_sign():
    bundle = bundle_of(RankOne(), 16, 2, cam_layer="features")
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    red = x[:, 0].numpy()
    expected = 3.0 * np.clip(red - red.mean(axis=(1, 2), keepdims=True), 0, None)  # |a| = |(1, 2, 2)| = 3
    np.testing.assert_allclose(explain.attribute(bundle, x, "eigencam", target=0), expected, rtol=1e-4, atol=1e-5)
    # Class-agnostic.
    np.testing.assert_array_equal(
        explain.attribute(bundle, x, "eigencam", target=1), explain.attribute(bundle, x, "eigencam", target=0)
    )


def _normalised(maps: np.ndarray) -> np.ndarray:
    low = maps.min(axis=(1, 2), keepdims=True)
    return (maps - low) / np.maximum(maps.max(axis=(1, 2), keepdims=True) - low, 1e-12)


@pytest.mark.slow
def test_cam_variants_agree_with_pytorch_grad_cam_on_the_default_model(default_bundle):
    """pytorch-grad-cam rescales maps to [0, 1]; after the same rescaling ours match.
    Grad-CAM++: pytorch-grad-cam adds 1e-6 to alpha's denominator, which with this
    model's gradients (~1e-3, so G^2 ~ 1e-6) shifts alpha; the maps still correlate > 0.99."""
    x = default_bundle.preprocess_batch([explain.load_sample(n) for n in ("chelsea", "coffee")])
    targets = default_bundle.logits(x).argmax(1)
    layer = default_bundle.model.get_submodule(default_bundle.cam_layer)
    for key, peer in (("gradcam", GradCAM), ("xgradcam", XGradCAM), ("layercam", LayerCAM), ("eigencam", EigenCAM),
                      ("gradcam_plusplus", GradCAMPlusPlus)):
        with default_bundle.lock, peer(model=default_bundle.model, target_layers=[layer]) as cam:
            theirs = cam(
                input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(t)) for t in targets]
            )
        ours = _normalised(explain.attribute(default_bundle, x, key))
        if key == "gradcam_plusplus":
            assert all(np.corrcoef(o.ravel(), t.ravel())[0, 1] > 0.99 for o, t in zip(ours, theirs, strict=True))
        else:
            np.testing.assert_allclose(ours, theirs, atol=1e-4, err_msg=key)
