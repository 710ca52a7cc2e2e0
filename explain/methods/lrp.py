"""Layer-wise Relevance Propagation through Zennit (Bach et al. 2015; Montavon et al. 2019).

Zennit supplies the rules, the composites (which rule for which layer) and the
canonizers for torchvision's ResNet and VGG. In-house, because Zennit has none:
`EfficientNetLiteCanonizer` for the offline default model, and the check that a
model of another family is a plain stack LRP can handle. The explained class's logit
is the relevance put at the output, so with conserving rules the map sums to it.
Map = input relevance summed over colour channels.
"""

from __future__ import annotations

import operator
import weakref
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import AttributeCanonizer, Canonizer, CompositeCanonizer, SequentialMergeBatchNorm
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat
from zennit.core import Composite
from zennit.layer import Sum
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

from ..models.bundle import ModelBundle
from ..models.efficientnet_lite import EfficientNetLite, MBConvBlock, ReLU6
from ..models.torchscript import ScriptedClassifier
from .lrp_timm import TimmResNetCanonizer, is_timm_resnet, unsupported_block
from .registry import Method, Param, register


class ExactMergeBatchNorm(SequentialMergeBatchNorm):
    """Zennit's `SequentialMergeBatchNorm`, with the emptied BatchNorm made an exact identity.

    Zennit leaves the merged BatchNorm computing x / sqrt(1 + eps): harmless for eps=1e-5,
    but EfficientNet-Lite0's 49 BatchNorms use eps=1e-3 and would shrink the logits by
    about 2.5 %. Setting the running variance to 1 - eps makes the factor exactly 1;
    `remove` restores it with the other BatchNorm parameters."""

    @staticmethod
    def merge_batch_norm(modules: Any, batch_norm: nn.Module) -> None:
        SequentialMergeBatchNorm.merge_batch_norm(modules, batch_norm)
        if (
            not isinstance(batch_norm, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))
            or batch_norm.running_var is None
        ):
            raise TypeError(f"{type(batch_norm).__name__} is not a BatchNorm with running statistics")
        batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data, 1.0 - batch_norm.eps)


class _MBConvSkipCanonizer(AttributeCanonizer):
    """MBConv blocks with a skip connection add `out + x` in their forward; the sum goes
    through a Zennit `Sum` module instead, so the composites give it the Norm rule
    (relevance split in proportion to each branch's contribution)."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module) -> dict[str, Any] | None:
        if isinstance(module, MBConvBlock) and module.has_skip:
            return {"forward": cls.forward.__get__(module), "canonizer_sum": Sum()}
        return None

    @staticmethod
    def forward(self: MBConvBlock, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expansion:
            out = self._act0(self._bn0(self._expand_conv(out)))
        out = self._act1(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return self.get_submodule("canonizer_sum")(torch.stack([x, out], dim=-1))


class _ReLU6PassCanonizer(AttributeCanonizer):
    """ReLU6 is `nn.ReLU` followed by a clamp at 6. The composites let relevance pass the
    `nn.ReLU` unchanged (Zennit's Pass rule for activations); the clamp's gradient would
    instead drop all relevance of saturated units (0 above 6). Its forward is replaced by
    the same value with a straight-through gradient, so the whole ReLU6 is one activation
    that passes relevance through, and relevance is conserved."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module) -> dict[str, Any] | None:
        if isinstance(module, ReLU6):
            return {"forward": cls.forward.__get__(module)}
        return None

    @staticmethod
    def forward(self: ReLU6, x: torch.Tensor) -> torch.Tensor:
        rectified = self.relu(x)
        return rectified - (rectified - rectified.clamp(max=6.0)).detach()


class EfficientNetLiteCanonizer(CompositeCanonizer):
    """Canonizer for `explain.models.efficientnet_lite.EfficientNetLite` (the offline default).

    - every BatchNorm is merged into the convolution right before it (Zennit's
      `SequentialMergeBatchNorm`, the modules being registered in forward order, made
      exact for eps=1e-3 by `ExactMergeBatchNorm`);
    - the residual add of MBConv blocks becomes a `Sum` module (Norm rule), as Zennit's
      ResNet canonizer does for ResNet blocks;
    - ReLU6 passes relevance through both its rectifier and its clamp.
    With that the stem convolution gets the composite's first-layer rule, the other
    convolutions (depthwise ones included) the convolution rule, `_fc` the epsilon rule
    and the global average pooling the Norm rule.
    """

    def __init__(self) -> None:
        super().__init__((ExactMergeBatchNorm(), _MBConvSkipCanonizer(), _ReLU6PassCanonizer()))


# Leaf modules a plain stack may use (BatchNorm only right after a convolution or linear layer).
_PLAIN_MODULES = (
    nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
    nn.Dropout, nn.Flatten, nn.Identity, nn.BatchNorm2d,
)
_PLAIN_FUNCTIONS = {torch.flatten, torch.relu, F.relu, operator.getitem, getattr}
_PLAIN_METHODS = {"flatten", "view", "reshape", "relu", "size", "squeeze"}
_plain_cache: "weakref.WeakKeyDictionary[nn.Module, str | None]" = weakref.WeakKeyDictionary()


def _plain_stack_problem(model: nn.Module) -> str | None:
    """None when the traced model only chains convolutions, linear layers, ReLUs, pooling,
    dropout and reshapes (a BatchNorm only right after a convolution or linear layer, so
    it can be merged); else what stands in the way (e.g. a residual add)."""
    if model in _plain_cache:
        return _plain_cache[model]
    problem: str | None
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # fx cannot trace arbitrary Python; such a model is simply not a plain stack
        problem = f"its forward cannot be traced ({type(exc).__name__})"
    else:
        modules = dict(model.named_modules())
        layers: list[str] = []  # unsupported layers are named first: they say most about the model
        operations: list[str] = []
        for node in graph.nodes:
            if node.op == "call_module":
                module = modules[node.target]
                if not isinstance(module, _PLAIN_MODULES):
                    layers.append(f"it uses {type(module).__name__}")
                elif isinstance(module, nn.BatchNorm2d):
                    source = node.args[0]
                    if not (source.op == "call_module" and isinstance(modules[source.target], (nn.Conv2d, nn.Linear))):
                        layers.append("a BatchNorm does not follow a convolution directly")
            elif node.op == "call_function" and node.target not in _PLAIN_FUNCTIONS:
                operations.append(f"its forward calls {getattr(node.target, '__name__', node.target)}")
            elif node.op == "call_method" and node.target not in _PLAIN_METHODS:
                operations.append(f"its forward calls .{node.target}()")
        problem = next(iter(layers + operations), None)
    _plain_cache[model] = problem
    return problem


def canonizers_for(model: nn.Module) -> list[Canonizer]:
    """Zennit canonizers for the model's family; raises ValueError (with the reason) when
    LRP cannot handle the model."""
    if isinstance(model, ScriptedClassifier):
        raise ValueError("LRP attaches rules to the model's layers, which a compiled TorchScript model hides.")
    if isinstance(model, EfficientNetLite):
        return [EfficientNetLiteCanonizer()]
    if isinstance(model, torchvision.models.ResNet):
        return [ResNetCanonizer()]
    if isinstance(model, torchvision.models.VGG):
        return [VGGCanonizer()]
    if is_timm_resnet(model):
        problem = unsupported_block(model)
        if problem is not None:
            raise ValueError(f"LRP covers timm ResNets with plain ReLU blocks; this one is not: {problem}.")
        return [TimmResNetCanonizer(model)]
    problem = _plain_stack_problem(model)
    if problem is not None:
        raise ValueError(
            f"LRP has canonizers for ResNet (torchvision, timm), VGG and EfficientNet-Lite0 and handles plain "
            f"convolution/linear/ReLU/pooling stacks; {type(model).__name__} is none of these: {problem}."
        )
    return [ExactMergeBatchNorm()]


def _unavailable(bundle: ModelBundle) -> str | None:
    try:
        canonizers_for(bundle.model)
    except ValueError as exc:
        return str(exc)
    return None


def input_bounds(bundle: ModelBundle, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Lowest and highest normalised input values, (1, 3, 1, 1): pixels 0 and 1 after the
    bundle's mean/std, the box EpsilonGammaBox's first-layer ZBox rule needs."""
    mean = torch.tensor(bundle.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std, device=device).view(1, -1, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


COMPOSITES: dict[str, Callable[[ModelBundle, torch.device, list[Canonizer]], Composite]] = {
    "epsilon_plus_flat": lambda bundle, device, canonizers: EpsilonPlusFlat(canonizers=canonizers),
    "epsilon_gamma_box": lambda bundle, device, canonizers: EpsilonGammaBox(
        *input_bounds(bundle, device), canonizers=canonizers
    ),
    "epsilon_alpha2_beta1": lambda bundle, device, canonizers: EpsilonAlpha2Beta1(canonizers=canonizers),
}


def _lrp(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    """Relevance at the input, (N, C, H, W). The composite registers its rules and
    canonizers on entry and removes them (restoring the BatchNorm parameters) on exit."""
    composite = COMPOSITES[p["composite"]](bundle, x.device, canonizers_for(bundle.model))
    one_hot = F.one_hot(target, bundle.num_classes).to(x.dtype)
    with Gradient(bundle.model, composite) as attributor:
        _, relevance = attributor(x.detach(), lambda logits: logits * one_hot)
    return relevance


register(Method(
    key="lrp",
    label="LRP",
    compute=_lrp,
    description=(
        "Layer-wise Relevance Propagation (Zennit): the class logit redistributed layer by layer down to the pixels, "
        "BatchNorm merged into the convolutions; summed over channels."
    ),
    reference="Bach et al. 2015; Montavon et al. 2019, Layer-Wise Relevance Propagation: An Overview",
    params=(
        Param("composite", "Rules (Zennit composite)", "epsilon_plus_flat", choices=tuple(COMPOSITES),
              help="epsilon_plus_flat: flat rule for the first layer, z+ for convolutions, epsilon for linear layers; "
                   "epsilon_gamma_box: z-box (pixel range) first, gamma=0.25 for convolutions; "
                   "epsilon_alpha2_beta1: alpha=2, beta=1 for convolutions."),
    ),
    family="relevance",
    sees_rectifiers=True,
    unavailable_when=_unavailable,
))
