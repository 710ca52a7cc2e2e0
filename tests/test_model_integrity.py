"""Every method leaves the shared model exactly as it was, also under concurrent use."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import explain
from tests.patience import method_params

CHEAP = {
    "integrated_gradients": {"n_steps": 4},
    "occlusion": {"window": 112, "stride": 112},
    "gradient_shap": {"n_samples": 2},
    "smoothgrad": {"n_samples": 2},
    "smoothgrad_sq": {"n_samples": 2},
    "vargrad": {"n_samples": 2},
    "scorecam": {"max_channels": 4},
    "ablationcam": {"max_channels": 4},
    "xrai": {"n_steps": 2, "algorithm": "fast"},
}


def snapshot(model: torch.nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                     + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules()),
        "modules": [type(m) for m in model.modules()],
    }


@pytest.fixture(scope="module")
def inputs(default_bundle):
    return default_bundle.preprocess_batch([explain.load_sample("chelsea"), explain.load_sample("coffee")])


@pytest.mark.parametrize("method", method_params(m.key for m in explain.list_methods()
                                                  if m.family != "perturbation" or m.key == "occlusion"))
def test_method_leaves_model_bit_identical(default_bundle, inputs, method):
    reason = explain.get_method(method).unavailable_reason(default_bundle)
    if reason is not None:
        pytest.skip(reason)
    model = default_bundle.model
    before = snapshot(model)
    with torch.no_grad():
        out_before = model(inputs)
    maps = explain.attribute(default_bundle, inputs, method, **CHEAP.get(method, {}))
    assert maps.shape == (2, 224, 224) and np.isfinite(maps).all() and np.abs(maps).max() > 0
    after = snapshot(model)
    with torch.no_grad():
        out_after = model(inputs)
    assert torch.equal(out_before, out_after)
    assert all(torch.equal(before["state"][k], after["state"][k]) for k in before["state"])
    assert {k: v for k, v in before.items() if k != "state"} == {k: v for k, v in after.items() if k != "state"}


def test_concurrent_sessions_get_the_same_maps_as_sequential(default_bundle, inputs):
    """Guided Backprop patches ReLU gradients; Saliency must not see that patch when
    both run at the same time on the shared model."""
    expected = {m: explain.attribute(default_bundle, inputs, m) for m in ("guided_backprop", "saliency", "gradcam")}
    results: dict[tuple[str, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def work(method: str, repeat: int) -> None:
        try:
            results[(method, repeat)] = explain.attribute(default_bundle, inputs, method)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(m, r)) for r in range(2) for m in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (method, _), value in results.items():
        np.testing.assert_array_equal(value, expected[method])
