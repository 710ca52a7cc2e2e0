"""Every method, metric and analysis runs on the device of the bundle.

Without a GPU, `DeviceAudit` (tests/device_audit.py) follows which tensors come from the
model's side and which were made on the default device, and fails on any operation that
would mix them on a GPU. With a GPU, every registered method and metric runs on CUDA and
on the CPU with the same weights and inputs, and the results agree.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch

import explain
from explain.analyses import RoarInputs
from explain.methods.registry import Method, MethodSpec, get_method, list_methods, register, unregister
from explain.metrics import list_metrics
from explain.metrics.registry import Comparison, ComparisonInput, Metric, MetricFamily, MetricInput
from explain.models.bundle import default_device
from tests.device_audit import DeviceAudit
from tests.patience import method_params
from tests.synthetic import PatchCNN, bundle_of
from tests.test_transformers import small_vit, transformer_bundle

CUDA = torch.cuda.is_available()
# few passes where a method or metric has these parameters (clamped to each one's minimum)
FAST_PARAMS = {"n_samples": 4, "steps": 4, "n_masks": 16, "n_steps": 4, "max_evals": 8}


def cnn() -> explain.ModelBundle:
    return bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")


def copy_to(bundle: explain.ModelBundle, device: str) -> explain.ModelBundle:
    """The same model, weights and metadata on another device (and the same batch size)."""
    rectifier = copy.deepcopy(bundle.rectifier_model) if bundle.rectifier_model is not None else None
    return explain.make_bundle(bundle.name, copy.deepcopy(bundle.model), bundle.class_names,
                               input_size=bundle.input_size, resize_size=bundle.resize_size,
                               mean=bundle.mean, std=bundle.std,
                               cam_layer=bundle.cam_layer, linear_head=bundle.linear_head, device=device,
                               batch_size=bundle.batch_size, cam_reshape=bundle.cam_reshape, rectifier_model=rectifier)


def model_for(method: Method) -> explain.ModelBundle:
    bundle = cnn()
    return bundle if method.is_available(bundle) else transformer_bundle("vit_b_16", small_vit())


def quick(owner: Method | MetricFamily) -> dict[str, Any]:
    """The fewest passes `owner`'s parameters allow, for the ones in `FAST_PARAMS`."""
    return {p.name: max(FAST_PARAMS[p.name], int(p.min or 0)) for p in owner.params if p.name in FAST_PARAMS}


def model_side(bundle: explain.ModelBundle, x: torch.Tensor) -> list[torch.Tensor]:
    return [x, *bundle.model.parameters(), *bundle.model.buffers()]


def images(bundle: explain.ModelBundle, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(bundle.device)


@pytest.mark.parametrize("key", method_params(m.key for m in list_methods()))
def test_every_method_keeps_its_tensors_on_the_models_device(key):
    method = get_method(key)
    bundle = model_for(method)
    x = images(bundle)
    audit = DeviceAudit(model_side(bundle, x))
    with audit:
        maps = explain.attribute(bundle, x, key, [1, 0], **quick(method))
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()
    assert not audit.mixes, sorted(set(audit.mixes))


def metric_run(metric: MetricFamily, bundle: explain.ModelBundle, x: torch.Tensor) -> Mapping[str, Any]:
    targets = torch.tensor([1, 0], device=bundle.device)
    specs = (MethodSpec.of("gradcam"), MethodSpec.of("saliency"))
    maps = {s.ident: explain.attribute(bundle, x, s.key, targets.tolist()) for s in specs}
    params = metric.resolve_params(quick(metric))
    if isinstance(metric, Comparison):
        return metric.compute(ComparisonInput(bundle, x, maps, targets, specs), params)
    assert isinstance(metric, Metric)
    return metric.compute(MetricInput(bundle, x, maps["gradcam"], targets, specs[0]), params)


@pytest.mark.parametrize("key", [m.key for m in list_metrics()])
def test_every_metric_keeps_its_tensors_on_the_models_device(key):
    metric = next(m for m in list_metrics() if m.key == key)
    bundle = cnn()
    x = images(bundle)
    audit = DeviceAudit(model_side(bundle, x))
    with audit:
        scores = metric_run(metric, bundle, x)
    assert set(scores) == {info.key for info in metric.scores}
    assert not audit.mixes, sorted(set(audit.mixes))


def _made_on_the_default_device(bundle: explain.ModelBundle, x: torch.Tensor, target: torch.Tensor,
                                params: Mapping[str, Any]) -> torch.Tensor:
    weights = torch.ones(x.shape[1:])  # the bug: no device=x.device
    return (x * weights).sum(1)


def test_the_audit_catches_a_tensor_made_on_the_default_device():
    register(Method(key="stray_device", label="Stray device (test)", compute=_made_on_the_default_device,
                    description="multiplies by a tensor made on the default device", reference="test"))
    try:
        bundle = cnn()
        x = images(bundle)
        audit = DeviceAudit(model_side(bundle, x))
        with audit:
            explain.attribute(bundle, x, "stray_device", [1, 0])
    finally:
        unregister("stray_device")
    assert [op for op, _ in audit.mixes] == ["mul"] and "test_devices.py" in audit.mixes[0][1]


def test_roar_trains_on_the_default_device_on_the_page_and_the_cli_alike():
    """The ROAR page passes no device and the CLI passes the default one: the same."""
    from explain.data.training import LabelledImages

    inputs = RoarInputs(LabelledImages.__new__(LabelledImages))
    assert inputs.device == str(default_device())


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("key", [m.key for m in list_methods()])
def test_every_method_gives_the_same_maps_on_cuda_and_cpu(key):
    method = get_method(key)
    on_cpu = model_for(method)
    on_gpu = copy_to(on_cpu, "cuda")
    x = images(on_cpu)
    cpu_maps = explain.attribute(on_cpu, x, key, [1, 0], **quick(method))
    gpu_maps = explain.attribute(on_gpu, x.cuda(), key, [1, 0], **quick(method))
    scale = np.abs(cpu_maps).max() + 1e-12
    np.testing.assert_allclose(gpu_maps / scale, cpu_maps / scale, atol=2e-3)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("key", [m.key for m in list_metrics()])
def test_every_metric_gives_the_same_scores_on_cuda_and_cpu(key):
    metric = next(m for m in list_metrics() if m.key == key)
    on_cpu = cnn()
    x = images(on_cpu)
    cpu = metric_run(metric, on_cpu, x)
    gpu = metric_run(metric, copy_to(on_cpu, "cuda"), x.cuda())
    for score, result in cpu.items():
        values = (lambda r: r.aucs) if isinstance(metric, Metric) else (lambda r: r.values)
        np.testing.assert_allclose(np.nan_to_num(values(gpu[score])), np.nan_to_num(values(result)),
                                   rtol=1e-3, atol=1e-3)
