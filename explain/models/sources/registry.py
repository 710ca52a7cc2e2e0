"""The one registry of model sources and the one loader: a reference such as
`timm:convnext_tiny`, `hf:path/to/folder`, `onnx:model.onnx`, `torchscript:model.pt`,
`torchvision:resnet18` or `factory:package.module:build` (plus, where the source takes
them, a weights file, a class count and class names) becomes a `ModelBundle`.

A new source is one module with a class that satisfies `ModelSource` and one
`register_source(...)` line in `explain/models/sources/__init__.py`. Every failure is a
`CustomModelError` (bad input: the message says what to change) or a
`ModelUnavailableError` (not here: unknown name, downloads off), one line each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from torch import nn

from ..architectures import CamLayers
from ..bundle import ModelBundle, make_bundle
from ..errors import CustomModelError, ModelUnavailableError
from ..state_dicts import first_line

DEFAULT_SOURCE = "torchvision"
MAX_MODEL_BYTES = 8 * 2**30  # your own files on your own machine (the app passes the operator's limit)
WeightsNeed = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class WeightsFile:
    """A weights file's name and bytes (a path read here, an upload, or what a remote worker received)."""

    name: str
    data: bytes

    @classmethod
    def read(cls, path: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES) -> WeightsFile:
        """The file at `path`, refused (before reading) when missing or over `max_bytes`."""
        file = Path(path).expanduser()
        if not file.is_file():
            raise CustomModelError(f"{path}: no such weights file.")
        size = file.stat().st_size
        if size > max_bytes:
            raise CustomModelError(
                f"{file.name}: the file is {size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB."
            )
        return cls(file.name, file.read_bytes())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class LoadRequest:
    """What comes with a reference: the weights file (for sources that take one), the class
    count and names, the device, and what the operator allows (downloads, TorchScript, size)."""

    weights: WeightsFile | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    device: torch.device | str | None = None
    allow_downloads: bool = False
    allow_torchscript: bool = True
    max_bytes: int = MAX_MODEL_BYTES


class ModelSource(Protocol):
    """One kind of model: `name` is the reference's prefix (`timm` in `timm:resnet50`),
    `reference` says what follows it, `weights` whether a weights file is required,
    optional or not taken, `description` what it is (for the page and `--help`)."""

    @property
    def name(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def reference(self) -> str: ...
    @property
    def weights(self) -> WeightsNeed: ...
    @property
    def description(self) -> str: ...

    def load(self, ref: str, request: LoadRequest) -> ModelBundle:
        """The model `ref` names, as a bundle; bad input raises `CustomModelError`."""
        ...


_SOURCES: dict[str, ModelSource] = {}


def register_source(source: ModelSource) -> ModelSource:
    if source.name in _SOURCES:
        raise ValueError(f"model source {source.name!r} is registered twice")
    _SOURCES[source.name] = source
    return source


def list_sources() -> list[ModelSource]:
    return list(_SOURCES.values())


def get_source(name: str) -> ModelSource:
    try:
        return _SOURCES[name]
    except KeyError:
        raise ModelUnavailableError(f"Unknown model source {name!r}; known: {', '.join(_SOURCES)}.") from None


def split_reference(text: str) -> tuple[ModelSource, str]:
    """`source:rest` -> (source, rest); a reference without a known prefix is a named model
    (the offline default or a torchvision zoo name)."""
    text = text.strip()
    prefix, sep, rest = text.partition(":")
    if sep and prefix in _SOURCES:
        if not rest.strip():
            raise CustomModelError(f"{text!r}: say which model after '{prefix}:' ({_SOURCES[prefix].reference}).")
        return _SOURCES[prefix], rest.strip()
    return _SOURCES[DEFAULT_SOURCE], text


def load_reference(text: str, request: LoadRequest | None = None) -> ModelBundle:
    """The one loader: the bundle a reference (plus weights and class settings) names."""
    request = request or LoadRequest()
    source, ref = split_reference(text)
    if source.weights == "required" and request.weights is None:
        raise CustomModelError(f"{source.label} models need a weights file (--weights).")
    if source.weights == "none" and request.weights is not None:
        raise CustomModelError(f"{source.label} models take no separate weights file: the file {ref!r} holds them.")
    bundle = source.load(ref, request)
    return dataclasses.replace(bundle, source=bundle.source or source.name)


def class_names_for(request: LoadRequest, outputs: int, model_names: Sequence[str] | None, label: str) -> list[str]:
    """The class names a bundle gets: the request's, else the model's own, else "class i";
    each checked against the `outputs` the model gives."""
    if request.num_classes is not None and request.num_classes != outputs:
        raise CustomModelError(
            f"{label}: the model gives {outputs} outputs per image, but {request.num_classes} classes were given."
        )
    if request.class_names is not None:
        if len(request.class_names) != outputs:
            raise CustomModelError(
                f"{label}: the model has {outputs} classes but the class-names file lists {len(request.class_names)}."
            )
        return list(request.class_names)
    if model_names is not None and len(model_names) == outputs:
        return list(model_names)
    return [f"class {i}" for i in range(outputs)]


class PreprocessingLike(Protocol):
    """What a bundle's preprocessing needs (a `Preprocessing`, or a factory's own values)."""

    @property
    def input_size(self) -> int: ...
    @property
    def resize_size(self) -> int: ...
    @property
    def mean(self) -> Sequence[float]: ...
    @property
    def std(self) -> Sequence[float]: ...


def finish_bundle(
    name: str,
    model: nn.Module,
    request: LoadRequest,
    preprocessing: PreprocessingLike,
    cam: CamLayers,
    *,
    weights: str,
    weights_sha256: str,
    source: str,
    model_names: Sequence[str] | None = None,
) -> ModelBundle:
    """The common end of every source: one probe forward pass (the model must map
    (1, 3, H, W) to (1, K) logits), class names checked against K, the bundle made with
    its model id from the weights' digest (so caches never mix two files of one name)."""
    outputs = output_count(model, preprocessing.input_size, name)
    bundle = make_bundle(
        name,
        model,
        class_names_for(request, outputs, model_names, name),
        input_size=preprocessing.input_size,
        resize_size=preprocessing.resize_size,
        mean=preprocessing.mean,
        std=preprocessing.std,
        cam_layer=cam.layer,
        linear_head=cam.head,
        cam_reshape=cam.reshape,
        device=request.device,
        weights=weights,
    )
    return dataclasses.replace(
        bundle, model_id=f"upload-{weights_sha256[:24]}", source=source, weights_sha256=weights_sha256
    )


def output_count(model: nn.Module, input_size: int, filename: str) -> int:
    """Classes the model predicts, from one forward pass on a zero image; a model that
    does not map (1, 3, H, W) to (1, K) logits is refused."""
    model.eval()  # in train mode the probe would update BatchNorm's running statistics
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, input_size, input_size))
    except Exception as exc:  # a user's model may raise anything; report it, keep the app alive
        raise CustomModelError(
            f"{filename}: the model failed on a 1 x 3 x {input_size} x {input_size} image "
            f"({type(exc).__name__}: {first_line(exc)})."
        ) from None
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CustomModelError(f"{filename}: expected logits of shape (1, classes), got {shape}.")
    return int(out.shape[1])


def load_model(
    ref: str = "efficientnet_lite0",
    device: torch.device | str | None = None,
    *,
    weights: str | os.PathLike | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    allow_downloads: bool = False,
    max_bytes: int = MAX_MODEL_BYTES,
) -> ModelBundle:
    """The Python API: `load_model("timm:convnext_tiny", weights="convnext.safetensors")`,
    `load_model("hf:path/to/folder")`, `load_model("resnet50")`... (see `load_reference`)."""
    request = LoadRequest(
        weights=WeightsFile.read(weights, max_bytes) if weights is not None else None,
        num_classes=num_classes,
        class_names=tuple(class_names) if class_names is not None else None,
        device=device,
        allow_downloads=allow_downloads,
        max_bytes=max_bytes,
    )
    return load_reference(ref, request)
