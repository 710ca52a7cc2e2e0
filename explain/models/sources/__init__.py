"""Model sources: one module per source, one registration line each (below)."""

from .factory import FactorySource
from .huggingface import HuggingFaceSource
from .onnx_source import OnnxSource, load_onnx_file
from .registry import (
    LoadRequest,
    ModelSource,
    WeightsFile,
    get_source,
    list_sources,
    load_reference,
    register_source,
    split_reference,
)
from .timm_source import TimmSource
from .torchscript_source import TorchScriptSource, load_torchscript_file
from .torchvision_source import TorchvisionSource

register_source(TorchvisionSource())
register_source(TimmSource())
register_source(HuggingFaceSource())
register_source(OnnxSource())
register_source(TorchScriptSource())
register_source(FactorySource())

__all__ = [
    "LoadRequest",
    "ModelSource",
    "WeightsFile",
    "get_source",
    "list_sources",
    "load_onnx_file",
    "load_reference",
    "load_torchscript_file",
    "register_source",
    "split_reference",
]
