"""Attribution methods: importing this package registers every method once."""

from . import cam, captum_methods, fullgrad, gradients, shap_lime  # noqa: F401  (registration side effects)
# registered last: the registry's order is the pickers' order
from . import lrp, xrai, rise, attention, attnlrp  # noqa: F401, I001
from .registry import (
    Method,
    MethodUnavailableError,
    Param,
    attribute,
    get_method,
    list_methods,
    register,
    resolve_targets,
)

__all__ = [
    "Method",
    "MethodUnavailableError",
    "Param",
    "attribute",
    "get_method",
    "list_methods",
    "register",
    "resolve_targets",
]
