"""ONNX graphs (models exported from other frameworks), converted to PyTorch by
`onnx2torch` and checked against the file's own outputs under `onnxruntime` on one
seeded input: a conversion that computes something else is refused, not explained.
Weights stored outside the file (external data) are refused: they would name other paths."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..architectures import last_convolution
from ..bundle import ModelBundle
from ..errors import CustomModelError
from ..preprocessing import Preprocessing
from ..state_dicts import first_line
from .registry import LoadRequest, WeightsFile, WeightsNeed, finish_bundle

TOLERANCE = 1e-3  # max |difference| / (1 + max |logit|) between onnx2torch and onnxruntime


def _input_size(graph_input: object) -> int:
    """The square side of a fixed (N, 3, H, W) input, else 224 (dynamic sizes)."""
    dims = graph_input.type.tensor_type.shape.dim  # type: ignore[attr-defined]
    sides = [d.dim_value for d in list(dims)[2:]]
    return int(sides[0]) if len(sides) == 2 and sides[0] and sides[0] == sides[1] else 224


def _inline_shared_initializers(proto: Any) -> None:
    """torch's exporter stores equal weights once and names the others with `Identity`
    nodes on that initializer; onnx2torch looks weights up among the initializers by name,
    so each such output becomes an initializer of its own (same values)."""
    initializers = {t.name: t for t in proto.graph.initializer}
    for node in [n for n in proto.graph.node if n.op_type == "Identity" and n.input[0] in initializers]:
        copy = type(initializers[node.input[0]])()
        copy.CopyFrom(initializers[node.input[0]])
        copy.name = node.output[0]
        proto.graph.initializer.append(copy)
        initializers[copy.name] = copy
        proto.graph.node.remove(node)


def _converted(proto: Any, name: str) -> nn.Module:
    from onnx2torch import convert

    _inline_shared_initializers(proto)
    try:
        return convert(proto)
    except NotImplementedError as exc:
        found = re.search(r"operation_type='([^']+)'.*?version=(\d+)", str(exc))
        what = f"the operator {found.group(1)} (opset {found.group(2)})" if found else first_line(exc)
        raise CustomModelError(
            f"{name}: onnx2torch cannot convert {what}; re-export the model without it "
            f"or as TorchScript / a state dict."
        ) from None
    except Exception as exc:  # the converter raises many kinds on odd graphs: one message
        raise CustomModelError(f"{name}: onnx2torch could not convert the graph ({first_line(exc)}).") from None


def check_against_onnxruntime(data: bytes, model: nn.Module, size: int, name: str) -> float:
    """Largest relative difference between the converted model and onnxruntime on one seeded input."""
    import onnxruntime

    x = torch.Generator().manual_seed(0)
    batch = torch.randn(1, 3, size, size, generator=x)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    with torch.no_grad():
        got = model(batch)
    got = (got[0] if isinstance(got, (tuple, list)) else got).numpy()
    if got.shape != expected.shape:
        raise CustomModelError(f"{name}: the converted model gives shape {got.shape}, onnxruntime {expected.shape}.")
    difference = float(np.abs(got - expected).max() / (1 + np.abs(expected).max()))
    if difference > TOLERANCE:
        raise CustomModelError(
            f"{name}: the converted model differs from onnxruntime by {difference:.2g} (relative); it is not explained."
        )
    return difference


def load_onnx_file(file: WeightsFile, request: LoadRequest) -> ModelBundle:
    """An ONNX file already read (a path, an upload, or the bytes a remote worker received)."""
    import onnx

    if len(file.data) > request.max_bytes:
        raise CustomModelError(
            f"{file.name}: the file is {len(file.data) / 2**20:.0f} MB; "
            f"the limit is {request.max_bytes / 2**20:.0f} MB."
        )
    try:
        proto = onnx.load_model_from_string(file.data)
        onnx.checker.check_model(proto)
    except Exception as exc:  # protobuf and the checker raise their own kinds
        raise CustomModelError(f"{file.name}: not a valid ONNX model ({first_line(exc)}).") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise CustomModelError(f"{file.name}: its weights live in external files; save them inside the .onnx file.")
    size = _input_size(proto.graph.input[0])
    model = _converted(proto, file.name).eval()
    check_against_onnxruntime(file.data, model, size, file.name)
    digest = file.sha256
    return finish_bundle(
        f"ONNX ({file.name})",
        model,
        request,
        Preprocessing(size, size if size != 224 else 256),
        last_convolution(model),
        weights=f"ONNX {file.name} (sha256 {digest[:12]})",
        weights_sha256=digest,
        source="onnx",
    )


@dataclass(frozen=True)
class OnnxSource:
    name: str = "onnx"
    label: str = "ONNX"
    reference: str = "an .onnx file"
    weights: WeightsNeed = "none"
    description: str = "An ONNX graph converted with onnx2torch and checked against onnxruntime."

    def load(self, ref: str, request: LoadRequest) -> ModelBundle:
        return load_onnx_file(WeightsFile.read(ref, request.max_bytes), request)
