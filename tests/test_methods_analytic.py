"""Attribution methods against closed-form answers on small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explain
from tests.synthetic import LinearClassifier, PatchCNN, SquareModel, bundle_of, patch_image


@pytest.fixture(scope="module")
def linear():
    model = LinearClassifier((3, 8, 8), classes=4)
    bundle = bundle_of(model, 8, 4)
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    return model, bundle, x


def weights_for(model: LinearClassifier, target: int) -> np.ndarray:
    return model.fc.weight[target].detach().view(3, 8, 8).numpy()


def test_saliency_of_linear_model_is_abs_weight_summed_over_channels(linear):
    model, bundle, x = linear
    maps = explain.attribute(bundle, x, "saliency", target=2)
    expected = np.abs(weights_for(model, 2)).sum(0)
    assert maps.shape == (5, 8, 8) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, np.broadcast_to(expected, maps.shape), rtol=1e-5, atol=1e-6)


def test_input_x_gradient_and_smoothgrad_of_linear_model(linear):
    model, bundle, x = linear
    w = weights_for(model, 1)
    ixg = explain.attribute(bundle, x, "input_x_gradient", target=1)
    np.testing.assert_allclose(ixg, (x.numpy() * w).sum(1), rtol=1e-5, atol=1e-5)
    # The gradient of a linear model does not depend on the input: noise changes nothing.
    sg = explain.attribute(bundle, x, "smoothgrad", target=1, n_samples=8)
    np.testing.assert_allclose(sg, np.broadcast_to(w.sum(0), sg.shape), rtol=1e-5, atol=1e-5)
    sg2 = explain.attribute(bundle, x, "smoothgrad_sq", target=1, n_samples=8)
    np.testing.assert_allclose(sg2, np.broadcast_to((w**2).sum(0), sg2.shape), rtol=1e-5, atol=1e-5)
    vg = explain.attribute(bundle, x, "vargrad", target=1, n_samples=8)
    assert np.abs(vg).max() < 1e-5


@pytest.mark.parametrize("integration", ["gausslegendre", "riemann_middle"])
def test_integrated_gradients_completeness(linear, integration):
    model, bundle, x = linear
    targets = [0, 1, 2, 3, 0]
    maps = explain.attribute(bundle, x, "integrated_gradients", target=targets, n_steps=16, integration=integration)
    with torch.no_grad():
        gap = model(x)[range(5), targets] - model(torch.zeros_like(x))[range(5), targets]
    np.testing.assert_allclose(maps.reshape(5, -1).sum(1), gap.numpy(), atol=1e-4)


def test_integrated_gradients_completeness_on_nonlinear_model():
    """Completeness holds for any model up to the integration error; PatchCNN is piecewise linear."""
    bundle = bundle_of(PatchCNN(), 32, 2)
    x = patch_image()
    maps = explain.attribute(bundle, x, "integrated_gradients", target=1, n_steps=256, integration="riemann_middle")
    with torch.no_grad():
        gap = float(bundle.model(x)[0, 1] - bundle.model(torch.zeros_like(x))[0, 1])
    assert maps.sum() == pytest.approx(gap, rel=2e-2)


def test_vargrad_of_quadratic_equals_4_a2_sigma2():
    """f(x) = sum(a x^2): the gradient 2a(x + e) has variance 4 a^2 sigma^2 per input."""
    a = torch.linspace(0.5, 2.0, 3 * 8 * 8).view(1, 3, 8, 8)
    bundle = bundle_of(SquareModel(a), 8, 2)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    noise_level = 0.2
    maps = explain.attribute(bundle, x, "vargrad", target=0, n_samples=256, noise_level=noise_level, seed=7)
    sigma = noise_level * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    expected = (4 * a.pow(2) * sigma.view(2, 1, 1, 1).pow(2)).sum(1).numpy()
    ratio = maps / expected
    # 256 samples: each pixel's variance estimate has ~9% relative error; the mean of 128 is tight.
    assert ratio.mean() == pytest.approx(1.0, abs=0.03)
    assert np.median(np.abs(ratio - 1)) < 0.12
    # SmoothGrad of the same model is the gradient at x (noise averages out): 2 a x.
    sg = explain.attribute(bundle, x, "smoothgrad", target=0, n_samples=256, noise_level=noise_level, seed=7)
    standard_error = (2 * a * sigma.view(2, 1, 1, 1)).pow(2).sum(1).div(256).sqrt().numpy()
    assert np.all(np.abs(sg - (2 * a * x).sum(1).numpy()) < 5 * standard_error)


@pytest.mark.parametrize(
    "method", ["gradcam", "cam", "gradcam_plusplus", "xgradcam", "layercam", "eigencam", "scorecam"]
)
def test_cam_methods_peak_inside_the_evidence_patch(method):
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    patches = [(4, 12, 18, 26), (20, 28, 2, 10)]
    x = torch.cat([patch_image(patch=p, seed=i) for i, p in enumerate(patches)])
    maps = explain.attribute(bundle, x, method, target=1)
    for m, (r0, r1, c0, c1) in zip(maps, patches, strict=True):
        row, col = np.unravel_index(np.argmax(m), m.shape)
        assert r0 <= row < r1 and c0 <= col < c1, (method, row, col)
        inside = m[r0:r1, c0:c1].mean()
        assert (
            inside
            > 3
            * np.abs(
                np.delete(
                    m.ravel(),
                    np.ravel_multi_index(
                        np.indices((r1 - r0, c1 - c0)).reshape(2, -1) + np.array([[r0], [c0]]), m.shape
                    ),
                )
            ).mean()
        )


def test_cam_equals_class_logit_after_pooling():
    """CAM averaged over the (unupsampled) layer is the logit minus the bias: check on the map's mean."""
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    x = patch_image()
    cam = explain.attribute(bundle, x, "cam", target=1)
    with torch.no_grad():
        logit = float(bundle.model(x)[0, 1] - bundle.model.fc.bias[1])
    # The CAM layer has the input's resolution here, so no resampling happens.
    assert cam.mean() == pytest.approx(logit, rel=1e-5)


def test_cam_needs_a_linear_head():
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features")
    with pytest.raises(explain.MethodUnavailableError, match="Grad-CAM"):
        explain.attribute(bundle, patch_image(), "cam", target=1)
    assert explain.attribute(bundle, patch_image(), "gradcam", target=1).shape == (1, 32, 32)


def test_bad_arguments_are_refused_with_clear_messages(linear):
    _, bundle, x = linear
    with pytest.raises(ValueError, match="Unknown method"):
        explain.attribute(bundle, x, "no_such_method")
    with pytest.raises(ValueError, match="out of range"):
        explain.attribute(bundle, x, "saliency", target=4)
    with pytest.raises(ValueError, match="outside"):
        explain.attribute(bundle, x, "smoothgrad", n_samples=0)
    with pytest.raises(ValueError, match="no parameter"):
        explain.attribute(bundle, x, "saliency", n_steps=3)
    with pytest.raises(ValueError, match="targets for"):
        explain.attribute(bundle, x, "saliency", target=[0, 1])


def test_registry_declares_parameters_with_valid_defaults():
    keys = {m.key for m in explain.list_methods()}
    assert {"saliency", "input_x_gradient", "integrated_gradients", "guided_backprop", "guided_gradcam", "deeplift",
            "occlusion", "gradient_shap", "cam", "gradcam", "smoothgrad", "smoothgrad_sq", "vargrad"} <= keys
    for method in explain.list_methods():
        defaults = method.resolve_params({})
        assert set(defaults) == {p.name for p in method.params}
        for p in method.params:
            if not p.choices and not isinstance(p.default, bool):  # switches have no range
                assert p.min <= p.default <= p.max, (method.key, p.name)


def test_batching_does_not_change_results(linear):
    """Chunks sized to the device must give the same maps as one big batch."""
    model, _, x = linear
    small = bundle_of(model, 8, 4, batch_size=2)
    large = bundle_of(model, 8, 4, batch_size=64)
    for method, params in [("integrated_gradients", {"n_steps": 8}), ("smoothgrad", {"n_samples": 4}),
                           ("gradient_shap", {"n_samples": 4}), ("occlusion", {"window": 4, "stride": 2})]:
        np.testing.assert_allclose(
            explain.attribute(small, x, method, target=1, **params),
            explain.attribute(large, x, method, target=1, **params), rtol=1e-4, atol=1e-5, err_msg=method,
        )
