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

import json
import math
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
    default: bool | int | float | str
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
        if isinstance(self.default, bool):
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.strip().lower() in ("true", "1", "yes")
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError(f"{self.name} must be true or false, not {value!r}")
        cast = int if isinstance(self.default, int) else float
        try:
            value = cast(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number, not {value!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{self.name} must be a finite number, not {value!r}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ValueError(f"{self.name}={value} is outside [{self.min}, {self.max}]")
        return value


def resolve_params(owner: str, declared: Sequence[Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` with defaults filled in; unknown names and out-of-range values refused
    (the message names `owner`, e.g. the method's label)."""
    known = {p.name: p for p in declared}
    unknown = set(given) - set(known)
    if unknown:
        raise ValueError(f"{owner} has no parameter(s) {sorted(unknown)}; it takes {sorted(known)}")
    return {name: p.validate(given.get(name, p.default)) for name, p in known.items()}


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
    `unavailable_when(bundle)`: why the method cannot explain that model (e.g. LRP on
    TorchScript), or None; pages show the reason next to the disabled method.
    `version`: bump it whenever the method's definition or numerics change; it is part
    of every stored map's key, so a fix recomputes this method's maps and no others.
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
    unavailable_when: Callable[[ModelBundle], str | None] | None = None
    version: int = 1

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return resolve_params(self.label, self.params, params)

    def images_per_chunk(self, params: Mapping[str, Any], bundle: ModelBundle, size: int) -> int:
        """Images whose passes fill about one device batch: the unit in which a caller
        can watch maps arrive (one image for methods of many passes per image)."""
        return max(1, min(bundle.batch_size, bundle.batch_size // max(1, self.evals_per_image(params, size))))

    def unavailable_reason(self, bundle: ModelBundle) -> str | None:
        """Why this method cannot explain `bundle`'s model, or None when it can."""
        if self.requires == "cam_layer" and bundle.cam_layer is None:
            return f"{self.label} needs a convolutional layer; {bundle.name} has none set."
        if self.requires == "linear_head" and (bundle.cam_layer is None or bundle.linear_head is None):
            return (
                f"{self.label} needs global average pooling followed by one linear layer; "
                f"{bundle.name} does not end that way. Use Grad-CAM instead."
            )
        return self.unavailable_when(bundle) if self.unavailable_when is not None else None

    def check_available(self, bundle: ModelBundle) -> None:
        reason = self.unavailable_reason(bundle)
        if reason is not None:
            raise MethodUnavailableError(reason)

    def is_available(self, bundle: ModelBundle) -> bool:
        return self.unavailable_reason(bundle) is None


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.key in _REGISTRY:
        raise ValueError(f"method {method.key!r} registered twice")
    _REGISTRY[method.key] = method
    return method


def unregister(key: str) -> None:
    """Remove a registered method (a test's own method, at teardown)."""
    _REGISTRY.pop(key, None)


def list_methods() -> list[Method]:
    return list(_REGISTRY.values())


def method_version(key: str) -> int:
    """The registered version of method `key`; 0 for keys that are not registered
    methods (ROAR's `random` baseline, a caller's own ranker)."""
    method = _REGISTRY.get(key)
    return method.version if method is not None else 0


def get_method(key: str) -> Method:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(f"Unknown method {key!r}; known: {', '.join(_REGISTRY)}") from None


@dataclass(frozen=True)
class MethodSpec:
    """A method and the parameters it runs with: what analyses store in their settings.

    `of()` keeps only the parameters that differ from the registered defaults, so the
    same settings always get the same spec (and reuse stored results). A key that is
    not registered (ROAR's `random` baseline, a test's own ranker) keeps its
    parameters as given."""

    key: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, key: str, params: Mapping[str, Any] | None = None) -> "MethodSpec":
        params = dict(params or {})
        if key not in _REGISTRY:
            return cls(key, tuple(sorted(params.items())))
        method = _REGISTRY[key]
        resolved = method.resolve_params(params)
        defaults = {p.name: p.default for p in method.params}
        return cls(key, tuple(sorted((k, v) for k, v in resolved.items() if v != defaults[k])))

    @property
    def ident(self) -> str:
        """Stable name in stored results: the key, plus the parameters when there are any."""
        if not self.params:
            return self.key
        return f"{self.key}{json.dumps(dict(self.params), sort_keys=True, separators=(',', ':'))}"

    @property
    def versioned_ident(self) -> str:
        """`ident` with the method's version: the name of results stored for this spec."""
        return f"{self.ident}@v{method_version(self.key)}"

    @property
    def resolved(self) -> dict[str, Any]:
        """Every parameter with defaults filled in (registered methods only)."""
        return get_method(self.key).resolve_params(dict(self.params))

    @property
    def label(self) -> str:
        """The method's label, with its non-default parameters when there are any."""
        base = _REGISTRY[self.key].label if self.key in _REGISTRY else self.key
        if not self.params:
            return base
        return f"{base} ({', '.join(f'{k}={v}' for k, v in self.params)})"


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
    called after each chunk. The model is used under `bundle.lock`, taken per chunk (and
    fair), so a waiting page's forward pass goes between two chunks; every method leaves
    the model exactly as it found it after each chunk.
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
    per_chunk = (
        n
        if spec.batched_internally
        else max(1, bundle.batch_size // max(1, spec.evals_per_image(resolved, images.shape[-1])))
    )
    per_chunk = min(per_chunk, bundle.batch_size)
    maps = []
    for start in range(0, n, per_chunk):
        x = images[start : start + per_chunk].to(bundle.device, torch.float32).clone().requires_grad_(True)
        t = targets[start : start + per_chunk].to(bundle.device)
        with bundle.lock:  # per chunk: a page's forward pass waiting for the model goes in between two
            raw = spec.compute(bundle, x, t, resolved)
        maps.append(to_maps(raw.detach().float(), (int(images.shape[-2]), int(images.shape[-1]))).cpu())
        if progress is not None:
            progress(min(start + per_chunk, n), n)
    return torch.cat(maps).numpy().astype(np.float32, copy=False)
