"""Attention-based maps for ViT-style transformers (torchvision, timm, Hugging Face), on
the internals of `transformer_internals` (attention probabilities recomputed from each
block's own projections). In-house: none of the installed libraries has these for all
three model sources (torch-cam's LeGrad takes torchvision's ViT only; it is the test's
reference there).

- Attention rollout (Abnar & Zuidema 2020): per block the head-averaged attention plus
  the identity (the residual), rows renormalised, multiplied from the first block to
  the last; class-agnostic.
- Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021, "Generic
  attention-model explainability", the rule for self-attention encoders): R = I; per
  block Abar = E_heads[(dy_t/dA ⊙ A)^+]; R += Abar R. One forward, one backward.
- LeGrad (Bousselham et al. 2024), as torch-cam 0.5 implements it: per block l the score
  s^l = head(final_norm(mean of block l's output tokens)); the map is the mean over
  blocks of E_{heads, queries}[(ds^l_t/dA^l)^+] over the patch keys. Each block's
  input starts a fresh graph, so one backward of sum_l s^l_t gives every ds^l/dA^l.

Each map is the row the head reads (the class token's; the mean of the class and
distillation tokens' for distilled DeiT; the patch rows' mean for average-pooled heads)
over the patch tokens, on the patch grid; `to_maps` upsamples it bilinearly like CAM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..models.bundle import ModelBundle
from .registry import Method, Param, register
from .transformer_internals import (
    TransformerLayout,
    captured,
    find_layout,
    recorded_elements,
    transformer_unavailable,
    within_attention_budget,
)


def attention_matrices(
    model: nn.Module, x: torch.Tensor, layout: TransformerLayout | None = None
) -> list[torch.Tensor]:
    """Head-averaged attention probabilities (N, T, T) of every encoder block, first to last."""
    with torch.no_grad(), captured(layout or find_layout(model)) as capture:
        model(x)
    return [attention.mean(dim=1) for attention in capture.attentions]


def attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """Rollout (N, T, T): prod over blocks (last first) of rownorm(A_l + I)."""
    tokens = attentions[0].shape[-1]
    identity = torch.eye(tokens, dtype=attentions[0].dtype, device=attentions[0].device)
    rollout = identity.expand_as(attentions[0])
    for attention in attentions:
        mixed = attention + identity
        rollout = (mixed / mixed.sum(dim=-1, keepdim=True)) @ rollout
    return rollout


def chefer_relevance(attentions: list[torch.Tensor], gradients: list[torch.Tensor]) -> torch.Tensor:
    """Chefer 2021b's token relevance (N, T, T) from per-block probabilities and their gradients (N, H, T, T)."""
    tokens = attentions[0].shape[-1]
    relevance = torch.eye(tokens, dtype=attentions[0].dtype, device=attentions[0].device).expand(
        attentions[0].shape[0], -1, -1
    )
    for attention, gradient in zip(attentions, gradients, strict=False):
        weighted = (gradient * attention).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    return relevance


def _rollout(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    layout = find_layout(bundle.model)

    def run(images: torch.Tensor, _targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        averaged = attention_matrices(bundle.model, images.detach(), layout)
        return layout.patch_grid(layout.readout(attention_rollout(averaged))), sum(a.numel() for a in averaged)

    return within_attention_budget(run, x, target)


def _chefer(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    layout = find_layout(bundle.model)

    def run(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        with torch.enable_grad(), captured(layout) as capture:
            score = bundle.model(images).gather(1, targets[:, None]).sum()
            gradients = torch.autograd.grad(score, capture.attentions)
        relevance = chefer_relevance([a.detach() for a in capture.attentions], list(gradients))
        return layout.patch_grid(layout.readout(relevance)), recorded_elements(capture)

    return within_attention_budget(run, x, target)


def legrad_maps(model: nn.Module, x: torch.Tensor, target: torch.Tensor, last_blocks: int = 0) -> torch.Tensor:
    """LeGrad's patch map (N, h, w) over the last `last_blocks` blocks (0: all)."""
    layout = find_layout(model)

    def run(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        with torch.enable_grad(), captured(layout, detach_block_inputs=True) as capture:
            model(images.detach())
            chosen = range(len(capture.attentions))[-last_blocks if last_blocks else 0:]
            scores = [layout.score_head(capture.block_outputs[i]).gather(1, targets[:, None]).sum() for i in chosen]
            gradients = torch.autograd.grad(torch.stack(scores).sum(), [capture.attentions[i] for i in chosen])
        per_block = torch.stack([gradient.clamp(min=0).mean(dim=(1, 2)) for gradient in gradients])
        return layout.patch_grid(per_block.mean(dim=0)), recorded_elements(capture)

    return within_attention_budget(run, x, target)


def _legrad(bundle: ModelBundle, x: torch.Tensor, target: torch.Tensor, p: Mapping[str, Any]) -> torch.Tensor:
    return legrad_maps(bundle.model, x, target, int(p["last_blocks"]))


def _unavailable(label: str) -> Any:
    return lambda bundle: transformer_unavailable(label, bundle.model, bundle.name)


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
    unavailable_when=_unavailable("Attention rollout"),
))

register(Method(
    key="chefer",
    label="Gradient-weighted attention (Chefer)",
    compute=_chefer,
    description=(
        "ViT only, class-specific: R = I; per block R += mean over heads of (gradient x attention)^+ times R; "
        "the class token's row of R over the patches."
    ),
    reference="Chefer, Gur & Wolf 2021, Generic Attention-model Explainability for Interpreting Bi-Modal and "
              "Encoder-Decoder Transformers (ICCV)",
    signed=False,
    family="attention",
    unavailable_when=_unavailable("Gradient-weighted attention"),
))

register(Method(
    key="legrad",
    label="LeGrad",
    compute=_legrad,
    description=(
        "ViT only, class-specific: per block, the class score read from that block's tokens, differentiated with "
        "respect to its attention; positive gradients averaged over heads, queries and blocks, over the patch keys."
    ),
    reference="Bousselham et al. 2024, LeGrad: An Explainability Method for Vision Transformers via Feature "
              "Formation Sensitivity",
    params=(Param("last_blocks", "Last blocks (0 = all)", 0, 0, 64, 1,
                  help="Average over the last this many encoder blocks; 0 takes every block."),),
    signed=False,
    family="attention",
    unavailable_when=_unavailable("LeGrad"),
))
