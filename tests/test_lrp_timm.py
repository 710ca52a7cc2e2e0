"""LRP on timm's ResNet family: BatchNorm merged by name, residual adds through Zennit's
Sum; relevance is conserved like on torchvision's ResNet, the model is left as it was,
and blocks beyond the canonizer are refused with the reason."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn
from zennit.composites import EpsilonPlusFlat

import explain
from explain.methods.lrp_timm import TimmResNetCanonizer


def bias_free_timm_resnet(name: str = "test_resnet") -> nn.Module:
    """Random weights with BatchNorm shifts and the head's bias removed: conserving rules
    must then give back the logit exactly."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.bias.zero_()
                m.weight.uniform_(0.5, 1.5)
        model.fc.bias.zero_()
    return model


@pytest.mark.parametrize("name", ["test_resnet", "resnet18"])
def test_lrp_on_timm_resnets_conserves_the_logit_and_restores_the_model(name: str) -> None:
    bundle = explain.make_bundle(name, bias_free_timm_resnet(name), ["a", "b", "c"], input_size=64, device="cpu")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    logits = bundle.logits(x)
    target = int(logits[0].argmax())
    maps = explain.attribute(bundle, x, "lrp", target=target, composite="epsilon_plus_flat")
    assert maps.sum() == pytest.approx(float(logits[0, target]), rel=1e-3)
    assert all(torch.equal(before[k], v) for k, v in bundle.model.state_dict().items())
    torch.testing.assert_close(bundle.logits(x), logits)


def test_canonized_timm_resnet_computes_the_same_function() -> None:
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        expected = model(x)
        composite = EpsilonPlusFlat(canonizers=[TimmResNetCanonizer(model)])
        with composite.context(model) as modified:
            torch.testing.assert_close(modified(x), expected, rtol=1e-4, atol=1e-5)


def test_lrp_refuses_timm_blocks_it_does_not_cover_with_the_reason() -> None:
    lrp = explain.get_method("lrp")
    se = explain.make_bundle(
        "se", timm.create_model("seresnet18", pretrained=False, num_classes=3), ["a", "b", "c"], device="cpu"
    )
    assert "has se" in lrp.unavailable_reason(se)
    convnext = explain.make_bundle(
        "c", timm.create_model("test_convnext", pretrained=False, num_classes=3), ["a", "b", "c"], device="cpu"
    )
    assert "ConvNeXt is none of these" in lrp.unavailable_reason(convnext)
