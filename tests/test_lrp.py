"""LRP (Zennit): conservation on bias-free ReLU networks, the EfficientNet-Lite0 canonizer,
maps on the default model, and models LRP cannot handle."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from zennit.core import collect_leaves

import explain
from explain.methods.lrp import COMPOSITES, EfficientNetLiteCanonizer
from explain.models.torchscript import ScriptedClassifier
from tests.synthetic import bundle_of

COMPOSITE_KEYS = list(COMPOSITES)


def bias_free_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 8 * 8, 32, bias=False), nn.ReLU(), nn.Linear(32, 16, bias=False), nn.ReLU(),
        nn.Linear(16, 5, bias=False),
    )


def bias_free_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5, bias=False),
    )


@pytest.mark.parametrize("composite", COMPOSITE_KEYS)
def test_epsilon_rule_conserves_the_logit_on_a_bias_free_relu_network(composite):
    """An MLP gets the epsilon rule on every linear layer in all three composites (the
    flat rule first in EpsilonPlusFlat, which conserves too): the map sums to the logit."""
    bundle = bundle_of(bias_free_mlp(), 8, 5)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    targets = [0, 1, 2, 3]
    maps = explain.attribute(bundle, x, "lrp", target=targets, composite=composite)
    logits = bundle.logits(x)[range(4), targets].numpy()
    np.testing.assert_allclose(maps.reshape(4, -1).sum(1), logits, rtol=1e-2)


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box"])
def test_convolution_rules_conserve_on_a_bias_free_cnn(composite):
    """Flat / z-box first, z+ / gamma for the next convolution, Norm for the pooling,
    epsilon for the head: all conserve relevance without biases."""
    bundle = bundle_of(bias_free_cnn(), 8, 5)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    target = int(bundle.logits(x)[0].argmax())
    maps = explain.attribute(bundle, x[:1], "lrp", target=target, composite=composite)
    assert maps.sum() == pytest.approx(float(bundle.logits(x[:1])[0, target]), rel=1e-2)


def test_efficientnet_canonizer_keeps_the_function_and_restores_the_model(default_bundle):
    """Merging BatchNorm, the Sum module at the residual adds and the straight-through
    ReLU6 clamp change how relevance flows, never the logits; removal restores
    every parameter and the forward methods."""
    model = default_bundle.model
    x = default_bundle.preprocess_batch([explain.load_sample("coffee")])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model(x)
        handles = EfficientNetLiteCanonizer().apply(model)
        try:
            leaves = list(collect_leaves(model))
            merged = [m for m in leaves if isinstance(m, nn.BatchNorm2d)]
            assert len(merged) == 49 and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in merged)
            assert sum(hasattr(m, "canonizer_sum") for m in model.modules()) == sum(
                getattr(m, "has_skip", False) for m in model.modules()
            ) > 0
            canonized = model(x)
        finally:
            for handle in handles:
                handle.remove()
        after = model(x)
    torch.testing.assert_close(canonized, before, rtol=0, atol=1e-4)  # Zennit's plain merge is off by 0.02 here
    assert torch.equal(after, before)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()) and set(state) == set(
        model.state_dict()
    )
    assert not any("forward" in vars(m) or hasattr(m, "canonizer_sum") for m in model.modules())


def test_relu6_clamp_passes_relevance_of_saturated_units():
    """A unit saturated at 6 keeps the relevance it received: with the clamp's own
    gradient (0 above 6) all of it would vanish."""
    from explain.models.efficientnet_lite import ReLU6

    class Saturating(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(2, 2, bias=False)
            self.act = ReLU6()
            self.fc2 = nn.Linear(2, 1, bias=False)
            with torch.no_grad():
                self.fc1.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 1.0]]))
                self.fc2.weight.copy_(torch.tensor([[1.0, 1.0]]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.act(self.fc1(x.flatten(1))))

    from zennit.attribution import Gradient
    from zennit.canonizers import CompositeCanonizer
    from zennit.composites import EpsilonAlpha2Beta1

    from explain.methods.lrp import _ReLU6PassCanonizer

    model = Saturating().eval()
    x = torch.tensor([[1.0, 2.0]])  # hidden units 10 -> 6 (saturated) and 2
    composite = EpsilonAlpha2Beta1(canonizers=[CompositeCanonizer([_ReLU6PassCanonizer()])])
    with Gradient(model, composite) as attributor:
        out, relevance = attributor(x, torch.ones(1, 1))
    # Epsilon rule: the output 8 = 6 + 2 sends 6/8 and 2/8 of the relevance to the two units, then to their inputs.
    torch.testing.assert_close(relevance, torch.tensor([[0.75, 0.25]]), rtol=1e-4, atol=1e-4)
    assert float(out.detach()) == pytest.approx(8.0)


# Hand-drawn boxes around the explained object in the 224 x 224 crops the default model sees
# (rows r0:r1, cols c0:c1): the rocket (missile), the flower (daisy), the cup (espresso).
OBJECT_BOXES = {"rocket": (55, 224, 95, 135), "flower": (30, 205, 15, 195), "coffee": (0, 150, 25, 190)}


@pytest.mark.slow
def test_lrp_maps_on_the_default_model_sit_on_the_object(default_bundle):
    """"On the object": the box holds at least 1.3 times its share of the image area of the
    positive relevance, and of the top 5 % pixels (for the thin rocket, a box of 13 % of
    the image holds about half of both)."""
    names = list(OBJECT_BOXES)
    x = default_bundle.preprocess_batch([explain.load_sample(n) for n in names])
    maps = explain.attribute(default_bundle, x, "lrp")
    for name, m in zip(names, maps, strict=True):
        r0, r1, c0, c1 = OBJECT_BOXES[name]
        inside = np.zeros(m.shape, bool)
        inside[r0:r1, c0:c1] = True
        positive = np.clip(m, 0, None)
        top = np.argsort(m.ravel())[-m.size // 20:]
        area = inside.mean()
        assert positive[inside].sum() / positive.sum() > 1.3 * area, name
        assert inside.ravel()[top].mean() > 1.3 * area, name


def test_lrp_composites_leave_the_default_model_intact(default_bundle):
    model = default_bundle.model
    x = default_bundle.preprocess_batch([explain.load_sample("chelsea")])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model(x)
    for composite in ("epsilon_gamma_box", "epsilon_alpha2_beta1"):
        maps = explain.attribute(default_bundle, x, "lrp", composite=composite)
        assert np.isfinite(maps).all() and np.abs(maps).max() > 0
    with torch.no_grad():
        assert torch.equal(model(x), before)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_lrp_is_unavailable_with_the_reason_for_models_it_cannot_handle():
    lrp = explain.get_method("lrp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, uploads of it are still supported
        scripted = bundle_of(ScriptedClassifier(torch.jit.script(bias_free_mlp())), 8, 5)
    assert "TorchScript" in lrp.unavailable_reason(scripted)
    with pytest.raises(explain.MethodUnavailableError, match="TorchScript"):
        explain.attribute(scripted, torch.zeros(1, 3, 8, 8), "lrp")
    mobilenet = explain.make_bundle(
        "m", torchvision.models.mobilenet_v3_small(num_classes=3), ["a", "b", "c"], input_size=32, device="cpu"
    )
    assert "Hardswish" in lrp.unavailable_reason(mobilenet)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=1, hidden_dim=8, mlp_dim=8, num_classes=3
    )
    assert "VisionTransformer is none of these" in lrp.unavailable_reason(
        explain.make_bundle("v", vit, ["a", "b", "c"], input_size=32, device="cpu")
    )
    for supported in (
        torchvision.models.resnet18(num_classes=3),
        torchvision.models.vgg11_bn(num_classes=3),
        bias_free_cnn(),
    ):
        assert lrp.unavailable_reason(explain.make_bundle("s", supported, ["a", "b", "c"], device="cpu")) is None


def test_lrp_on_a_resnet_uses_zennits_canonizer_and_conserves_without_biases():
    """ResNet's residual adds go through Zennit's Sum (Norm rule): relevance splits between
    the branches and, with biases and BatchNorm shifts removed, still sums to the logit."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.bias.zero_()
                m.weight.uniform_(0.5, 1.5)
        model.fc.bias.zero_()
    bundle = explain.make_bundle("r18", model, ["a", "b", "c"], input_size=64, device="cpu")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    target = int(bundle.logits(x)[0].argmax())
    maps = explain.attribute(bundle, x, "lrp", target=target, composite="epsilon_plus_flat")
    assert maps.sum() == pytest.approx(float(bundle.logits(x)[0, target]), rel=1e-2)
