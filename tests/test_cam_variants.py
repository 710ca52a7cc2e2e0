"""HiResCAM, FullGrad, Ablation-CAM, ShapleyCAM, FinerCAM and the smoothing options:
closed forms on small models, and agreement with pytorch-grad-cam 1.5.7 on the same
layer and target, compared before the peer's final min-max scaling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    FinerCAM,
    FullGrad,
    GradCAM,
    HiResCAM,
    LayerCAM,
    ShapleyCAM,
    XGradCAM,
    base_cam,
    eigen_cam,
    fullgrad_cam,
    hirescam,
    layer_cam,
)
from pytorch_grad_cam.utils import svd_on_activations
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.stats import spearmanr
from torch import nn

import explain
from explain.methods.fullgrad import bias_layers, effective_bias
from tests.synthetic import PatchCNN, bundle_of, patch_image

NEW_METHODS = ("hirescam", "fullgrad", "ablationcam", "shapleycam", "finercam")


# ---------------------------------------------------------------- closed forms


@pytest.fixture(scope="module")
def patch_case():
    """PatchCNN: class-1 logit = 4 x the spatial mean of channel 0 of the CAM layer, class-0
    logit = mean of channels 1 + 2; channel 3 is 0 everywhere. The CAM layer keeps 32 x 32."""
    model = PatchCNN()
    bundle = bundle_of(model, 32, 2, cam_layer="features", linear_head="fc")
    x = torch.cat([patch_image(seed=0), patch_image(patch=(20, 28, 2, 10), seed=1)])
    with torch.no_grad():
        features = model.features(model.conv2(model.relu1(model.conv1(x))))
    return bundle, x, features


def test_hirescam_and_shapleycam_equal_gradcam_when_the_gradient_is_spatially_constant_and_nothing_is_curved(
    patch_case,
):
    """GAP + linear head right after the CAM layer: G_kij = w_k / (h w) everywhere, so
    HiResCAM's sum_k G_kij A_kij is Grad-CAM's sum_k mean(G_k) A_kij; the head is linear,
    so ShapleyCAM's Hessian term is 0. Both: 4 / (h w) A_0 for class 1."""
    bundle, x, features = patch_case
    a0 = features[:, 0].numpy()
    for method in ("hirescam", "shapleycam"):
        np.testing.assert_allclose(explain.attribute(bundle, x, method, target=1), 4.0 / a0[0].size * a0, rtol=1e-5,
                                   atol=1e-7, err_msg=method)


def test_ablationcam_of_a_linear_head_is_each_channels_share_of_the_logit(patch_case):
    """y_0 = m_1 + m_2 (m_k the spatial mean of A_k): zeroing A_k drops y_0 by m_k, so
    w_k = m_k / (m_1 + m_2). Channel 3 is 0 everywhere: never ablated, so 3 channels
    scored give the same map as all."""
    bundle, x, features = patch_case
    means = features.mean(dim=(2, 3))
    expected = ((means[:, 1:3, None, None] * features[:, 1:3]).sum(1) / means[:, 1:3].sum(1)[:, None, None]).numpy()
    maps = explain.attribute(bundle, x, "ablationcam", target=0)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(explain.attribute(bundle, x, "ablationcam", target=0, max_channels=3), maps)
    # Class 1 lives in channel 0 alone: ablating it drops the logit to 0 (w_0 = 1).
    np.testing.assert_allclose(explain.attribute(bundle, x, "ablationcam", target=1), features[:, 0].numpy(), rtol=1e-5)


def test_finercam_against_the_only_other_class_is_gradcam_of_the_logit_difference(patch_case):
    """Two classes: the one comparison class is the other class, and with alpha = 1 the
    score is p_0 (y_1 - y_0) / (p_0 + 1e-9) = y_1 - y_0 = 4 m_0 - m_1 - m_2 (up to 1e-9 / p_0),
    so the map is ReLU(4 A_0 - A_1 - A_2) / (h w); with alpha = 0 it is Grad-CAM of y_1."""
    bundle, x, features = patch_case
    hw = features[0, 0].numel()
    expected = torch.relu(4 * features[:, 0] - features[:, 1] - features[:, 2]).numpy() / hw
    np.testing.assert_allclose(explain.attribute(bundle, x, "finercam", target=1), expected, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(explain.attribute(bundle, x, "finercam", target=1, alpha=0.0),
                               explain.attribute(bundle, x, "gradcam", target=1), rtol=1e-5, atol=1e-9)


class QuadraticHead(nn.Module):
    """CAM layer A = a 1 x 1 convolution of the input (`features`); logit_c = sum_k v_ck mean(A_k²) / 2.
    G_k = v_ck A_k / (h w) and the Hessian is diagonal v_ck / (h w), so ShapleyCAM's
    G - H A / 2 = v_ck A_k / (2 h w), and its weight is v_ck mean(A_k) / (2 h w): half of Grad-CAM's."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.features = nn.Conv2d(3, 4, 1)
        self.v = nn.Parameter(torch.randn(2, 4, generator=g))
        with torch.no_grad():
            self.features.weight.copy_(torch.randn(4, 3, 1, 1, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.features(x).pow(2).mean(dim=(2, 3)) / 2) @ self.v.T


def test_shapleycam_subtracts_half_the_hessian_vector_product():
    model = QuadraticHead()
    bundle = bundle_of(model, 8, 2, cam_layer="features")
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = model.features(x)
    hw = a[0, 0].numel()
    weights = model.v.detach()[1][None, :] * a.mean(dim=(2, 3)) / (2 * hw)
    expected = torch.relu((weights[:, :, None, None] * a).sum(1)).numpy()
    np.testing.assert_allclose(explain.attribute(bundle, x, "shapleycam", target=1), expected, rtol=1e-4, atol=1e-7)
    gradcam = torch.relu((2 * weights[:, :, None, None] * a).sum(1)).numpy()
    np.testing.assert_allclose(explain.attribute(bundle, x, "gradcam", target=1), gradcam, rtol=1e-4, atol=1e-7)


def test_eigen_smoothing_of_a_rank_one_layer_is_the_centred_weighted_map(patch_case):
    """Layer-CAM's weighted maps here are c A_0 (one channel): their first principal
    component is that channel, so eigen smoothing gives ReLU(c (A_0 - mean A_0))."""
    bundle, x, features = patch_case
    a0 = features[:, 0]
    c = 4.0 / a0[0].numel()
    expected = torch.relu(c * (a0 - a0.mean(dim=(1, 2), keepdim=True))).numpy()
    np.testing.assert_allclose(explain.attribute(bundle, x, "layercam", target=1, eigen_smooth=True), expected,
                               rtol=1e-4, atol=1e-7)


def test_smoothing_and_channel_caps_are_in_the_planned_passes():
    for key in ("gradcam", "hirescam", "fullgrad", "shapleycam"):
        method = explain.get_method(key)
        plain = method.evals_per_image(method.resolve_params({}), 224)
        assert method.evals_per_image(method.resolve_params({"aug_smooth": True}), 224) == 6 * plain, key
    assert explain.get_method("shapleycam").evals_per_image({}, 224) == 2
    ablation = explain.get_method("ablationcam")
    assert ablation.evals_per_image(ablation.resolve_params({"max_channels": 64}), 224) == 65
    assert ablation.evals_per_image(ablation.resolve_params({"max_channels": 64, "aug_smooth": True}), 224) == 6 * 65
    assert "aug_smooth" not in {p.name for p in explain.get_method("finercam").params}  # the peer offers none


def test_fullgrad_needs_bias_layers_and_reads_batchnorm_bias_as_the_authors():
    bundle = bundle_of(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)), 4, 2)
    assert "biases" in explain.get_method("fullgrad").unavailable_reason(bundle)
    norm = nn.BatchNorm2d(2).eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([1.0, -2.0]))
        norm.running_var.copy_(torch.tensor([4.0, 0.25]))
        norm.weight.copy_(torch.tensor([2.0, 3.0]))
        norm.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.zeros(1, 2, 1, 1)
    np.testing.assert_allclose(effective_bias(norm).detach(), norm(x).flatten().detach(), rtol=1e-6)  # BN(0) = its bias
    assert bias_layers(nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), norm)) == [norm]


# ---------------------------------------------------------------- against pytorch-grad-cam


class SmallNet(nn.Module):
    """Conv + BN + in-place ReLU twice (the CAM layer `features` ends in a ReLU), then a
    1 x 1 convolution with SiLU (curvature after the CAM layer for ShapleyCAM, and a
    spatially varying gradient for HiResCAM), GAP, linear head. Seeded, with BN
    statistics away from the identity so FullGrad's BatchNorm biases matter."""

    def __init__(self, classes: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        )
        self.post = nn.Sequential(nn.Conv2d(16, 16, 1), nn.SiLU())
        self.fc = nn.Linear(16, classes)
        with torch.no_grad():  # mostly positive evidence, so that the top class's maps are not all rectified away
            self.post[0].weight.abs_()
            self.fc.weight.add_(0.3)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.uniform_(module.bias, -0.3, 0.3)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.post(self.features(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def small_case():
    bundle = bundle_of(SmallNet(), 32, 6, cam_layer="features", linear_head="fc")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return bundle, x


def _resized_only(cam: np.ndarray, target_size: Any = None) -> np.ndarray:
    """pytorch-grad-cam's `scale_cam_image` without the min-max scaling (resizing kept)."""
    if target_size is None:
        return np.float32(cam)
    return np.float32([cv2.resize(np.float32(img), target_size) for img in cam])


def _sign_fixed_projection(activation_batch: np.ndarray) -> np.ndarray:
    """The peer's `get_2d_projection` with the sign rule documented in explain.methods.cam:
    the projection correlates positively with the channel-summed, centred features
    (the peer leaves the SVD's sign to LAPACK: pytorch-grad-cam #315)."""
    projections = svd_on_activations.get_2d_projection(activation_batch)
    for projection, activations in zip(projections, activation_batch, strict=False):
        total = activations.sum(axis=0)
        if ((projection - projection.mean()) * (total - total.mean())).sum() < 0:
            projection *= -1
    return projections


@contextmanager
def peer_patched(raw: bool, fixed_sign: bool) -> Iterator[None]:
    """`raw`: the peer's final min-max scaling off (FullGrad's per-layer scaling, part of
    its definition, stays); `fixed_sign`: its SVD projections (Eigen-CAM, eigen smoothing)
    with a fixed sign."""
    with ExitStack() as stack:
        if raw:
            for module in (base_cam, fullgrad_cam):
                stack.enter_context(pytest.MonkeyPatch.context()).setattr(module, "scale_cam_image", _resized_only)
        if fixed_sign:
            for module in (base_cam, eigen_cam, hirescam, layer_cam, fullgrad_cam):
                stack.enter_context(pytest.MonkeyPatch.context()).setattr(
                    module, "get_2d_projection", _sign_fixed_projection
                )
        yield


@contextmanager
def trainable(model: nn.Module) -> Iterator[None]:
    """Parameters that require grad while the peer runs, as it expects: its ShapleyCAM
    differentiates the layer's gradient again, which after a frozen piecewise-linear head
    (the default model) has no graph and raises."""
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(True)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(False)
            parameter.grad = None


PEERS: dict[str, Callable[..., Any]] = {
    "gradcam": GradCAM, "xgradcam": XGradCAM, "layercam": LayerCAM, "eigencam": EigenCAM, "hirescam": HiResCAM,
    "ablationcam": AblationCAM, "shapleycam": ShapleyCAM, "fullgrad": FullGrad,
}


def peer_maps(bundle: explain.ModelBundle, x: torch.Tensor, key: str, aug_smooth: bool = False,
              eigen_smooth: bool = False) -> np.ndarray:
    """pytorch-grad-cam's maps for the top-1 classes, with its final scaling off unless
    `aug_smooth` (whose per-view scaling is part of its definition)."""
    layer = bundle.model.get_submodule(bundle.cam_layer)
    targets = [ClassifierOutputTarget(int(t)) for t in bundle.logits(x).argmax(1)]
    with bundle.lock, peer_patched(raw=not aug_smooth, fixed_sign=True), trainable(bundle.model):
        if key == "finercam":
            with FinerCAM(bundle.model, [layer]) as cam:
                return cam(x.clone().requires_grad_(True), targets=None, eigen_smooth=eigen_smooth, alpha=1.0,
                           comparison_categories=[1, 2, 3])
        with PEERS[key](bundle.model, [] if key == "fullgrad" else [layer]) as cam:
            return cam(input_tensor=x.clone().requires_grad_(True), targets=targets, aug_smooth=aug_smooth,
                       eigen_smooth=eigen_smooth)


def assert_agree(ours: np.ndarray, theirs: np.ndarray, label: str) -> None:
    """Spearman >= 0.99 and max |ours - theirs| <= 1e-4 max |theirs|, per image."""
    assert ours.shape == theirs.shape, label
    for o, t in zip(ours, theirs, strict=False):
        assert np.abs(t).max() > 0, f"{label}: the peer's map is empty"
        difference = np.abs(o - t).max() / np.abs(t).max()
        rho = spearmanr(o.ravel(), t.ravel())[0]
        assert difference <= 1e-4 and rho >= 0.99, (
            f"{label}: normalised max difference {difference:.2e}, Spearman {rho:.4f}"
        )


@pytest.mark.parametrize("key", NEW_METHODS)
def test_new_variants_agree_with_pytorch_grad_cam_before_its_scaling(small_case, key):
    bundle, x = small_case
    assert_agree(explain.attribute(bundle, x, key), peer_maps(bundle, x, key), key)


def test_hirescam_and_shapleycam_differ_from_gradcam_where_the_gradient_varies(small_case):
    """Guards the agreement test: on SmallNet the variants are not Grad-CAM in disguise."""
    bundle, x = small_case
    gradcam = explain.attribute(bundle, x, "gradcam")
    for key in ("hirescam", "shapleycam"):
        assert np.abs(explain.attribute(bundle, x, key) - gradcam).max() > 1e-3 * np.abs(gradcam).max(), key


@pytest.mark.parametrize(
    "key", ("gradcam", "layercam", "eigencam", "hirescam", "ablationcam", "shapleycam", "fullgrad")
)
def test_aug_smooth_agrees_with_pytorch_grad_cam(small_case, key):
    bundle, x = small_case
    assert_agree(explain.attribute(bundle, x, key, aug_smooth=True), peer_maps(bundle, x, key, aug_smooth=True), key)


@pytest.mark.parametrize("key", ("gradcam", "xgradcam", "layercam", "hirescam", "ablationcam", "shapleycam", "fullgrad",
                                 "finercam"))
def test_eigen_smooth_agrees_with_pytorch_grad_cam(small_case, key):
    bundle, x = small_case
    assert_agree(
        explain.attribute(bundle, x, key, eigen_smooth=True), peer_maps(bundle, x, key, eigen_smooth=True), key
    )


def test_new_variants_explain_vision_transformer_tokens():
    """On a tiny torchvision ViT (CAM layer: the last block's ln_1 tokens on their grid):
    every variant runs, Ablation-CAM ablates token channels, and ShapleyCAM's Hessian term
    is not 0 (attention and LayerNorm are curved; the math attention kernel gives the
    double backward the fused kernels lack)."""
    from torchvision.models import VisionTransformer

    from explain.models import zoo_cam_layers

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                              num_classes=5).eval()
    nn.init.normal_(model.heads.head.weight)  # torchvision zero-initialises the head: every gradient would be 0
    layers = zoo_cam_layers("vit_b_16", model)
    bundle = explain.make_bundle("tiny ViT", model, [str(i) for i in range(5)], input_size=32, mean=(0, 0, 0),
                                 std=(1, 1, 1), device="cpu", cam_layer=layers.layer, cam_reshape=layers.reshape)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    maps = {key: explain.attribute(bundle, x, key) for key in NEW_METHODS + ("gradcam",)}
    for key, value in maps.items():
        assert np.isfinite(value).all() and (value >= 0).all(), key
    for key in ("hirescam", "fullgrad", "ablationcam", "shapleycam"):
        assert maps[key].max() > 0, key
    assert np.abs(maps["shapleycam"] - maps["gradcam"]).max() > 1e-3 * maps["gradcam"].max()


@pytest.mark.slow
@pytest.mark.parametrize("key", ("hirescam", "shapleycam", "finercam"))
def test_gradient_variants_agree_with_pytorch_grad_cam_on_the_default_model(default_bundle, key):
    """The default EfficientNet-Lite0 at its CAM layer (ReLU6 head: ShapleyCAM = Grad-CAM there).
    Ablation-CAM and FullGrad are left to SmallNet: the peer would ablate all 1,280 channels,
    and keeps every FullGrad channel at 224 x 224 (gigabytes)."""
    x = default_bundle.preprocess_batch([explain.load_sample(n) for n in ("chelsea", "coffee")])
    assert_agree(explain.attribute(default_bundle, x, key), peer_maps(default_bundle, x, key), key)
