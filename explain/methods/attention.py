"""Attention rollout for torchvision Vision Transformers (Abnar & Zuidema 2020), in-house
(none of the installed libraries has it for torchvision's ViT).

Per encoder block: the attention weights averaged over heads, plus the identity (the
residual connection), rows renormalised; the blocks' matrices multiplied from the
first to the last; the class token's row over the patch tokens is the map, on the
patch grid, upsampled bilinearly. Class-agnostic: the target does not change it.

torchvision's `EncoderBlock` calls its `nn.MultiheadAttention` with
need_weights=False, so the weights are not in any output. They are recomputed: a
forward hook records each block's `ln_1` output (the attention's query, key and
value), and the block's own attention module is called again on it with
need_weights=True. Nothing in the model is patched.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Mapping

import torch
import torchvision

from ..models.bundle import ModelBundle, vit_tokens_to_grid
from .cam import captured_output
from .registry import Method, register


def attention_matrices(model: torchvision.models.VisionTransformer, x: torch.Tensor) -> list[torch.Tensor]:
    """Head-averaged attention weights (N, T, T) of every encoder block, first to last."""
    blocks = list(model.encoder.layers)
    with torch.no_grad(), ExitStack() as stack:
        stores = [stack.enter_context(captured_output(block.ln_1)) for block in blocks]
        model(x)
        return [
            block.self_attention(
                store["output"], store["output"], store["output"], need_weights=True, average_attn_weights=True
            )[1]
            for block, store in zip(blocks, stores, strict=True)
        ]


def attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """Rollout (N, T, T): prod over blocks (last first) of rownorm(A_l + I)."""
    tokens = attentions[0].shape[-1]
    identity = torch.eye(tokens, dtype=attentions[0].dtype, device=attentions[0].device)
    rollout = identity.expand_as(attentions[0])
    for attention in attentions:
        mixed = attention + identity
        rollout = (mixed / mixed.sum(dim=-1, keepdim=True)) @ rollout
    return rollout


def _rollout(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    rollout = attention_rollout(attention_matrices(bundle.model, x.detach()))
    return vit_tokens_to_grid(rollout[:, :1, :].transpose(1, 2))[:, 0]


def _not_a_vit(bundle: ModelBundle) -> str | None:
    if isinstance(bundle.model, torchvision.models.VisionTransformer):
        return None
    return f"Attention rollout reads the class token's attention of a Vision Transformer; {bundle.name} is not one."


register(Method(
    key="attention_rollout",
    label="Attention rollout",
    compute=_rollout,
    description=(
        "ViT only: attention averaged over heads plus the identity, rows renormalised, multiplied over the blocks; "
        "the class token's row over the patches (class-agnostic)."
    ),
    reference="Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers",
    signed=False,
    family="attention",
    unavailable_when=_not_a_vit,
))
