"""The one registry of attribution methods and the one way to call them.

A method is registered once with its parameters (name, default, range) so that pages
build their widgets from the registry and reports record exactly what ran.
`attribute(bundle, images, method, target=None, **params)` returns float32 maps
`(N, H, W)` at input resolution for every method.

Channel reduction, the same for every method that attributes per input channel:
the map is the **sum over colour channels** of the per-channel attribution. It keeps
completeness (the map sums to the same total as the raw attribution); for Saliency,
whose per-channel values are |gradient|, it gives sum_c |df/dx_c|.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..models.bundle import ModelBundle

# compute(bundle, x, target, params) -> (N, C, H, W) per-channel or (N, H, W) maps.
ComputeFn = Callable[[ModelBundle, torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor]
ProgressFn = Callable[[int, int], None]


class MethodUnavailableError(ValueError):
    """The method cannot explain this model (e.g. CAM without a GAP + linear head)."""


@dataclass(frozen=True)
class Param:
    """A tunable parameter of a method, with what a widget needs to offer it."""

    name: str
    label: str
    default: int | float | str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def validate(self, value: Any) -> int | float | str:
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {self.choices}, not {value!r}")
            return value
        cast = int if isinstance(self.default, int) else float
        try:
            value = cast(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number, not {value!r}") from None
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ValueError(f"{self.name}={value} is outside [{self.min}, {self.max}]")
        return value


@dataclass(frozen=True)
class Method:
    """A registered attribution method.

    `signed`: whether maps carry meaningful negative evidence (shown with a diverging
    colormap). `evals_per_image(params, size)`: forward(+backward) passes per image
    for an input of side `size`; sizes batches and
    is the baseline of the benchmark's overhead ratio. `batched_internally`: the method splits its own
    model calls (noise samples, IG steps) into device-sized batches. `sees_rectifiers`:
    the method changes the backward pass at every rectifier (Guided Backprop, DeepLIFT,
    LRP), so it must run on a form of the model whose rectifiers are `nn.ReLU` modules:
    `attribute` hands its `compute` the bundle's `with_rectifiers()` view.
    """

    key: str
    label: str
    compute: ComputeFn
    description: str
    reference: str
    params: tuple[Param, ...] = ()
    signed: bool = True
    family: str = "gradient"
    requires: str = ""  # "cam_layer" or "linear_head" when the model must provide one
    evals_per_image: Callable[[Mapping[str, Any], int], int] = field(default=lambda params, size: 1)
    batched_internally: bool = False
    sees_rectifiers: bool = False

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in, unknown names and out-of-range values refused."""
        known = {p.name: p for p in self.params}
        unknown = set(params) - set(known)
        if unknown:
            raise ValueError(f"{self.label} has no parameter(s) {sorted(unknown)}; it takes {sorted(known)}")
        return {name: p.validate(params.get(name, p.default)) for name, p in known.items()}

    def check_available(self, bundle: ModelBundle) -> None:
        if self.requires == "cam_layer" and bundle.cam_layer is None:
            raise MethodUnavailableError(f"{self.label} needs a convolutional layer; {bundle.name} has none set.")
        if self.requires == "linear_head" and (bundle.cam_layer is None or bundle.linear_head is None):
            raise MethodUnavailableError(
                f"{self.label} needs global average pooling followed by one linear layer; "
                f"{bundle.name} does not end that way. Use Grad-CAM instead."
            )

    def is_available(self, bundle: ModelBundle) -> bool:
        try:
            self.check_available(bundle)
        except MethodUnavailableError:
            return False
        return True


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.key in _REGISTRY:
        raise ValueError(f"method {method.key!r} registered twice")
    _REGISTRY[method.key] = method
    return method


def list_methods() -> list[Method]:
    return list(_REGISTRY.values())


def get_method(key: str) -> Method:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(f"Unknown method {key!r}; known: {', '.join(_REGISTRY)}") from None


def resolve_targets(bundle: ModelBundle, images: torch.Tensor, target: int | Sequence[int] | None) -> torch.Tensor:
    """Class index per image: the top-1 prediction when `target` is None."""
    n = images.shape[0]
    if target is None:
        return bundle.logits(images).argmax(dim=1)
    targets = torch.as_tensor([target] * n if isinstance(target, (int, np.integer)) else list(target), dtype=torch.long)
    if targets.shape != (n,):
        raise ValueError(f"got {targets.numel()} targets for {n} images")
    bad = targets[(targets < 0) | (targets >= bundle.num_classes)]
    if bad.numel():
        raise ValueError(f"class index {int(bad[0])} is out of range for {bundle.num_classes} classes")
    return targets


def to_maps(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-channel (N, C, H, W) or coarse (N, h, w) attributions -> (N, H, W) at input size."""
    if raw.dim() == 4:
        raw = raw.sum(dim=1)
    if tuple(raw.shape[-2:]) != tuple(size):
        raw = F.interpolate(raw[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return raw


def attribute(
    bundle: ModelBundle,
    images: torch.Tensor,
    method: str,
    target: int | Sequence[int] | None = None,
    *,
    progress: ProgressFn | None = None,
    **params: Any,
) -> np.ndarray:
    """Attribution maps for a preprocessed batch `(N, C, H, W)`: float32 `(N, H, W)`.

    `target`: one class for all images, one per image, or None for each image's top-1
    prediction. `params` are the method's registered parameters (defaults fill the rest).
    Images go through the model in device-sized chunks; `progress(done, total)` is
    called after each chunk. The model is used under `bundle.lock`, and every method
    leaves it exactly as it found it.
    """
    spec = get_method(method)
    spec.check_available(bundle)
    resolved = spec.resolve_params(params)
    if images.dim() != 4:
        raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(images.shape)}")
    targets = resolve_targets(bundle, images, target)
    if spec.sees_rectifiers:
        bundle = bundle.with_rectifiers()
    n = images.shape[0]
    per_chunk = n if spec.batched_internally else max(1, bundle.batch_size // max(1, spec.evals_per_image(resolved, images.shape[-1])))
    per_chunk = min(per_chunk, bundle.batch_size)
    maps = []
    with bundle.lock:
        for start in range(0, n, per_chunk):
            x = images[start : start + per_chunk].to(bundle.device, torch.float32).clone().requires_grad_(True)
            t = targets[start : start + per_chunk].to(bundle.device)
            raw = spec.compute(bundle, x, t, resolved)
            maps.append(to_maps(raw.detach().float(), tuple(images.shape[-2:])).cpu())
            if progress is not None:
                progress(min(start + per_chunk, n), n)
    return torch.cat(maps).numpy().astype(np.float32, copy=False)
