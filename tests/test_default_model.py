"""The offline default model: real ImageNet predictions, and zoo models never download."""

from __future__ import annotations

import pytest
import torch

import explain
from explain.models import zoo_weight_path


def test_chelsea_is_a_cat_and_coffee_is_espresso(default_bundle):
    x = default_bundle.preprocess_batch([explain.load_sample("chelsea"), explain.load_sample("coffee")])
    top = default_bundle.top_k(x, 5)
    assert {281, 282, 285} & {i for i, _, _ in top[0][:3]}
    assert top[1][0][0] == 967 and top[1][0][1] == "espresso"
    assert sum(p for _, _, p in top[1]) <= 1.0 + 1e-6


def test_bundle_describes_the_default_model(default_bundle):
    b = default_bundle
    assert b.name == "efficientnet_lite0" and b.num_classes == 1000 and b.input_size == 224
    assert b.num_parameters == 4_652_008
    assert not b.model.training
    assert b.model.get_submodule(b.cam_layer) is not None and b.linear_head == "_fc"
    x = b.preprocess(explain.load_sample("rocket"))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert -1.0 - 1e-6 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-6  # mean 0.5, std 0.5
    assert b.to_display(x[None]).shape == (1, 224, 224, 3)


@pytest.mark.parametrize("name", explain.sample_names())
def test_every_sample_photo_loads_offline_as_rgb(name):
    image = explain.load_sample(name)
    assert image.mode == "RGB" and min(image.size) >= 224


def test_zoo_model_without_weights_tells_the_operator_where_the_file_must_go(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(explain.ModelUnavailableError) as err:
        explain.load_model("resnet50")
    assert "not installed on this server" in str(err.value)
    assert str(tmp_path) not in str(err.value)  # the message may reach visitors: no server path
    assert str(zoo_weight_path("resnet50")) in err.value.operator_hint
    assert "resnet50-" in err.value.operator_hint and not (tmp_path / "hub").exists()


def test_zoo_model_loads_from_the_torch_cache(tmp_path, monkeypatch):
    """A weight file placed where the error said is used, with torchvision's preprocessing."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = zoo_weight_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    bundle = explain.load_model("resnet18", device="cpu")
    assert bundle.cam_layer == "layer4" and bundle.linear_head == "fc" and bundle.mean[0] == pytest.approx(0.485)
    x = bundle.preprocess_batch([explain.load_sample("chelsea")])
    assert explain.attribute(bundle, x, "cam").shape == (1, 224, 224)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(explain.ModelUnavailableError, match="Unknown model"):
        explain.load_model("not_a_model")
