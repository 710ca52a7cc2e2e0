"""AttnLRP for ViT-style transformers (Achtibat et al., ICML 2024), in-house as gradient x
input with detach tricks (the approach of the authors' LXT library), one forward and
one backward pass.

Why not LXT itself: LXT is released under the Clear BSD licence, which states that no
patent rights are granted, and its README says LRP is a patented technology usable free
of charge only for personal and scientific purposes; that does not fit a hosted
product. The rules below are written from the paper.

Rules, each an identity in the forward values and a change in the gradient only:
- linear layers and the patch-embedding convolution: epsilon rule (`epsilon_rule`);
- LayerNorm: linear with the standard deviation detached (the centring and the affine
  part pass relevance; the division is a constant);
- elementwise activations (GELU, ReLU, SiLU, ...): identity rule, y = x * (f(x)/x) with
  the ratio detached;
- softmax: plain gradient x input (the paper's Taylor rule R_i = x_i (R_i - s_i sum R));
- q k^T and A v: uniform rule, each operand gets half the gradient
  (`transformer_internals.Propagation`).
The map is the input times the modified gradient of the target logit, summed over
colour channels. On a bias-free model the relevance of the input, the class token and
the position embeddings plus what the softmax rule absorbs (its Taylor bias: the
relevance entering the probabilities minus the relevance leaving the logits) adds up
to the logit; the softmax's share is not small on arbitrary weights, so the
`softmax="detached"` option (CP-LRP, Ali et al. 2022: probabilities held constant) is
offered for exact conservation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from ..models.bundle import ModelBundle
from .registry import Method, Param, register
from .transformer_internals import (
    Capture,
    Propagation,
    captured,
    epsilon_rule,
    find_layout,
    recorded_elements,
    transformer_unavailable,
    within_attention_budget,
)

ACTIVATIONS = (nn.GELU, nn.ReLU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardswish, nn.Mish)


def _is_activation(module: nn.Module) -> bool:
    """Elementwise activation modules: torch's own, and transformers' `activations` classes."""
    parameterless = next(module.parameters(recurse=True), None) is None
    return isinstance(module, ACTIVATIONS) or (parameterless and type(module).__module__ == "transformers.activations")


def _layer_norm_std_detached(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    norm: Any = module
    x = args[0]
    dims = tuple(range(-len(norm.normalized_shape), 0))
    centred = x - x.mean(dim=dims, keepdim=True)
    std = (centred.pow(2).mean(dim=dims, keepdim=True) + norm.eps).sqrt().detach()
    y = centred / std
    if norm.weight is not None:
        y = y * norm.weight
    return y + norm.bias if norm.bias is not None else y


def _identity_rule(_module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    x = args[0]
    ratio = torch.where(x == 0, torch.zeros_like(x), output / torch.where(x == 0, torch.ones_like(x), x))
    return x * ratio.detach()


@contextmanager
def attnlrp_rules(model: nn.Module, epsilon: float) -> Iterator[None]:
    """Forward hooks that give every linear, normalisation and activation module its AttnLRP rule."""

    def epsilon_hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        return epsilon_rule(output, epsilon)

    with ExitStack() as stack:
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                hook: Any = epsilon_hook
            elif isinstance(module, nn.LayerNorm):
                hook = _layer_norm_std_detached
            elif _is_activation(module):
                hook = _identity_rule
            else:
                continue
            stack.callback(module.register_forward_hook(hook).remove)
        yield


@contextmanager
def attnlrp_context(model: nn.Module, epsilon: float, detach_softmax: bool = False) -> Iterator[Capture]:
    """Forward passes inside run with AttnLRP's rules (or CP-LRP's: softmax detached)
    under grad mode; the yielded capture holds the attention logits and probabilities."""
    layout = find_layout(model)
    with (
        torch.enable_grad(),
        attnlrp_rules(model, epsilon),
        captured(layout, Propagation(epsilon, detach_softmax)) as capture,
    ):
        yield capture


def _attnlrp(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    def run(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        images = images.detach().requires_grad_(True)
        with attnlrp_context(bundle.model, float(p["epsilon"]), p["softmax"] == "detached") as capture:
            score = bundle.model(images).gather(1, targets[:, None]).sum()
            gradient = torch.autograd.grad(score, images)[0]
        return images.detach() * gradient, recorded_elements(capture)

    return within_attention_budget(run, x, target)


register(Method(
    key="attnlrp",
    label="AttnLRP (transformer LRP)",
    compute=_attnlrp,
    description=(
        "ViT only, class-specific LRP: epsilon rule on linear layers, LayerNorm linear with its std fixed, identity "
        "rule on activations, uniform split of q k^T and A v between their operands; input x modified gradient."
    ),
    reference="Achtibat et al. 2024, AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for Transformers (ICML)",
    params=(
        Param("epsilon", "Epsilon", 1e-6, 1e-9, 1.0, 1e-6, help="Stabiliser of the epsilon rule on linear layers."),
        Param("softmax", "Softmax rule", "taylor", choices=("taylor", "detached"),
              help="taylor: AttnLRP's rule, relevance also flows through q and k; detached: CP-LRP, the attention "
                   "probabilities held constant (relevance only through the values; conserves exactly)."),
    ),
    signed=True,
    family="attention",
    unavailable_when=lambda bundle: transformer_unavailable("AttnLRP", bundle.model, bundle.name),
))
