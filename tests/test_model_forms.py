"""The default model's two forms: fast operators (nn.ReLU6, native padding) for most
methods, ReLU + clamp for the methods that must see its rectifiers. Same weights, same
logits, same maps as the single split form the model had before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explain
from explain.models.bundle import make_bundle
from explain.models.efficientnet_lite import EfficientNetLite, ReLU6
from tests.patience import method_params

CHEAP = {"integrated_gradients": {"n_steps": 4}, "occlusion": {"window": 112, "stride": 112},
         "gradient_shap": {"n_samples": 2}, "smoothgrad": {"n_samples": 2}, "smoothgrad_sq": {"n_samples": 2},
         "vargrad": {"n_samples": 2}}
NAMES = ["chelsea", "coffee", "astronaut", "rocket"]


@pytest.fixture(scope="module")
def images(default_bundle):
    return default_bundle.preprocess_batch([explain.load_sample(n) for n in NAMES])


@pytest.fixture(scope="module")
def previous_bundle(default_bundle):
    """The model as it was before the fast form: ReLU + clamp and F.pad before every
    convolution, one form for every method."""
    model = EfficientNetLite(num_classes=1000, rectifiers="split", explicit_padding=True)
    model.load_state_dict(default_bundle.model.state_dict())
    b = default_bundle
    return make_bundle(b.name, model, b.class_names, input_size=b.input_size, resize_size=b.resize_size, mean=b.mean,
                       std=b.std, cam_layer=b.cam_layer, linear_head=b.linear_head, device="cpu")


def test_both_forms_share_one_set_of_tensors(default_bundle):
    fast, split = default_bundle.model, default_bundle.rectifier_model
    assert split is not None and split is not fast
    for (name, a), (other, b) in zip(fast.state_dict(keep_vars=True).items(), split.state_dict(keep_vars=True).items()):
        assert name == other and a is b
    assert not any(p.requires_grad for p in split.parameters()) and not split.training
    assert default_bundle.with_rectifiers().model is split and default_bundle.with_rectifiers().lock is default_bundle.lock
    assert default_bundle.with_rectifiers().model_id == default_bundle.model_id


def test_fast_form_has_no_relu_modules_and_split_form_one_per_relu6(default_bundle):
    relu6 = [m for m in default_bundle.model.modules() if isinstance(m, nn.ReLU6)]
    assert len(relu6) == 33 and not any(isinstance(m, nn.ReLU) for m in default_bundle.model.modules())
    split = default_bundle.rectifier_model
    assert sum(isinstance(m, ReLU6) for m in split.modules()) == 33
    assert sum(isinstance(m, nn.ReLU) for m in split.modules()) == 33
    assert not any(isinstance(m, nn.ReLU6) for m in split.modules())


def test_all_forms_give_the_same_logits_on_real_images(default_bundle, previous_bundle, images):
    with torch.no_grad():
        fast = default_bundle.model(images)
        split = default_bundle.rectifier_model(images)
        before = previous_bundle.model(images)
    assert (fast - before).abs().max() <= 1e-6 and (split - before).abs().max() <= 1e-6
    assert fast.argmax(1).tolist()[:2] == [before.argmax(1)[0].item(), 967]


def test_guided_backprop_zeroes_negative_gradients_at_every_rectifier(default_bundle, images):
    """Hooks on every nn.ReLU of the split form: the gradient leaving each rectifier (what
    reaches the node that produced its input, after every hook on that input, Captum's
    included) is never negative, while negative gradients do arrive at its output."""
    leaving: dict[int, float] = {}
    arriving: dict[int, float] = {}
    handles = []

    def watch(index: int):
        def pre_hook(_module, inputs):
            x = inputs[0]

            def node_hook(grad_outputs):
                leaving[index] = min(leaving.get(index, 0.0), float(grad_outputs[x.output_nr].min()))

            x.grad_fn.register_prehook(node_hook)  # runs after the tensor hooks on x

        def hook(_module, _inputs, output):
            output.register_hook(lambda g: arriving.__setitem__(index, min(arriving.get(index, 0.0), float(g.min()))))

        return pre_hook, hook

    relus = [m for m in default_bundle.rectifier_model.modules() if isinstance(m, nn.ReLU)]
    try:
        for i, relu in enumerate(relus):
            pre_hook, hook = watch(i)
            handles += [relu.register_forward_pre_hook(pre_hook), relu.register_forward_hook(hook)]
        explain.attribute(default_bundle, images[:2], "guided_backprop")
    finally:
        for h in handles:
            h.remove()
    assert sorted(leaving) == list(range(len(relus))) == sorted(arriving)
    assert all(v >= 0.0 for v in leaving.values())
    assert sum(v < 0.0 for v in arriving.values()) > len(relus) // 2


def assert_same_maps(ours: np.ndarray, before: np.ndarray) -> None:
    scale = float(np.abs(before).max()) or 1.0
    np.testing.assert_allclose(ours, before, rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("method", method_params(m.key for m in explain.list_methods()
                                                  if (m.family != "perturbation" or m.key == "occlusion")))
def test_every_method_gives_the_same_maps_as_before(default_bundle, previous_bundle, images, method):
    reason = explain.get_method(method).unavailable_reason(default_bundle)
    if reason is not None:
        pytest.skip(reason)  # e.g. attention rollout: ViT only
    params = CHEAP.get(method, {})
    assert_same_maps(explain.attribute(default_bundle, images[:1], method, **params),
                     explain.attribute(previous_bundle, images[:1], method, **params))
