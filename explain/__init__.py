"""Backend of the interpretability dashboard: models, data, attribution methods,
metrics and plots. No Streamlit here: everything is importable and testable alone."""

from . import allocator

allocator.tune()  # glibc's mmap/trim thresholds for every entry point: see explain/allocator.py

from .methods.cache import AttributionCache, cached_attribute
from .data.images import ImageLoadError, NamedImage, load_image_bytes, load_sample, sample_names
from .methods import Method, MethodUnavailableError, Param, attribute, get_method, list_methods
from .models import DEFAULT_MODEL, ModelBundle, ModelUnavailableError, list_models, load_model, make_bundle

__all__ = [
    "AttributionCache", "cached_attribute",
    "ImageLoadError", "NamedImage", "load_image_bytes", "load_sample", "sample_names",
    "Method", "MethodUnavailableError", "Param", "attribute", "get_method", "list_methods",
    "DEFAULT_MODEL", "ModelBundle", "ModelUnavailableError", "list_models", "load_model", "make_bundle",
]
