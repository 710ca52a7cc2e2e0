"""Attention internals of ViT-style classifiers from torchvision, timm and Hugging Face.

`find_layout(model)` finds, by the modules' structure, the encoder blocks and their
global self-attention, the number of prefix tokens (class, distillation, register
tokens), which token rows the head reads, and the head that turns tokens into class
scores. `captured(layout)` then records, during one forward pass, every block's
attention probabilities (N, heads, T, T) (tensors of the autograd graph, so gradients
with respect to them can be taken) and every block's output tokens.

Why the attention is recomputed: torchvision's `MultiheadAttention` is called with
`need_weights=False`, timm's `Attention` and transformers' `ViTAttention` use fused
scaled-dot-product attention; none exposes the probabilities. While `captured` is
active each attention module's `forward` is replaced (an instance attribute, deleted
on exit, so the shared model is left as it was; methods run under `bundle.lock`) by
one that computes softmax(q k^T / sqrt(d)) v explicitly from the module's own
projections. A `Propagation` lets AttnLRP change how gradients pass through it.

Swin-style windowed attention (a `window_size` attribute) and rotary position
embeddings are refused with a one-line reason: the class-token rules are defined for
global self-attention over all tokens.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ScoreHead = Callable[[torch.Tensor], torch.Tensor]
# A method's work on a chunk of images: (maps, elements of attention it recorded).
ChunkFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, int]]

# Attention kept per chunk of images (probabilities, their logits and gradients, ~4
# bytes x 3 per element): ViT-L/14 at 336 px records ~0.5 GB per image, so a GPU batch
# of 128 would not fit; chunks are sized from the first image's record.
ATTENTION_BUDGET_BYTES = 2**30


class NotATransformerError(ValueError):
    """The model has no ViT-style global self-attention these methods can read."""


@dataclass(frozen=True)
class Propagation:
    """How gradients pass through the recomputed attention.

    Plain (`epsilon=None`): ordinary autograd. AttnLRP (`epsilon` set): the linear
    projections apply the epsilon rule, and each operand of the two bilinear products
    (q k^T and A v) gets half the gradient (the uniform rule), so gradient x input
    splits their relevance evenly between the operands."""

    epsilon: float | None = None
    detach_softmax: bool = False

    def softmax(self, logits: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(logits, dim=-1)
        return probabilities.detach() if self.detach_softmax else probabilities

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        z = F.linear(x, weight, bias)
        return z if self.epsilon is None else epsilon_rule(z, self.epsilon)

    def bilinear_operand(self, t: torch.Tensor) -> torch.Tensor:
        if self.epsilon is None or self.detach_softmax:
            return t  # with the probabilities constant, A v is linear in v: v keeps the whole gradient
        return 0.5 * t + 0.5 * t.detach()


PLAIN = Propagation()


def epsilon_rule(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """`z` unchanged in value, its gradient scaled by z / (z + eps sign z): gradient x
    input through the layer then gives LRP-epsilon's relevance."""
    scale = (z / (z + epsilon * torch.where(z >= 0, 1.0, -1.0))).detach()
    return z * scale + (z * (1 - scale)).detach()


@dataclass(frozen=True)
class AttentionSite:
    """One encoder block and its self-attention module; `style` says whose it is."""

    block: nn.Module
    attention: nn.Module
    style: str  # "torch_mha" (torchvision), "qkv" (timm), "q_k_v" (transformers)


@dataclass(frozen=True)
class TransformerLayout:
    """What the transformer methods need to know about a ViT-style model.

    `readout_rows`: the token rows the head reads (class token (0,); class and
    distillation tokens (0, 1)); empty when the head averages the patch tokens.
    `score_head`: block tokens (N, T, D) -> class scores (N, K), the token mean through
    the model's final norm and head (LeGrad's per-layer score, as torch-cam defines it)."""

    sites: tuple[AttentionSite, ...]
    prefix_tokens: int
    readout_rows: tuple[int, ...]
    score_head: ScoreHead
    grid: tuple[int, int] | None = None  # (rows, columns) of patches when the model says; else square

    def patch_grid(self, token_values: torch.Tensor) -> torch.Tensor:
        """Per-token values (N, T) -> the patch tokens' values on their grid (N, h, w)."""
        patches = token_values[:, self.prefix_tokens:]
        rows, columns = self.grid or (math.isqrt(patches.shape[1]),) * 2
        if rows * columns != patches.shape[1]:
            raise ValueError(f"{patches.shape[1]} patch tokens do not form a {rows} x {columns} grid")
        return patches.reshape(token_values.shape[0], rows, columns)

    def readout(self, token_matrix: torch.Tensor) -> torch.Tensor:
        """Rows (N, T, T) -> the row of what the head reads (N, T): the mean of the
        readout rows, or of the patch rows when the head averages patches."""
        rows = list(self.readout_rows) or list(range(self.prefix_tokens, token_matrix.shape[1]))
        return token_matrix[:, rows].mean(dim=1)


@dataclass
class Capture:
    """What one forward pass under `captured` recorded, in block order."""

    attentions: list[torch.Tensor] = field(default_factory=list)
    attention_logits: list[torch.Tensor] = field(default_factory=list)  # softmax inputs, for relevance accounting
    block_outputs: list[torch.Tensor] = field(default_factory=list)


def _site_style(module: nn.Module) -> str | None:
    if isinstance(module, nn.MultiheadAttention):
        return "torch_mha"
    linear = nn.Linear
    if isinstance(getattr(module, "qkv", None), linear) and isinstance(getattr(module, "proj", None), linear):
        return "qkv" if hasattr(module, "num_heads") else None
    if all(isinstance(getattr(module, name, None), linear) for name in ("q_proj", "k_proj", "v_proj", "o_proj")):
        return "q_k_v" if hasattr(module, "head_dim") else None
    return None


def _refusal(module: nn.Module, style: str) -> str | None:
    if hasattr(module, "window_size"):
        return "its attention is windowed (Swin): the rules read global self-attention over all tokens"
    if style == "qkv" and "rope" in inspect.signature(module.forward).parameters:
        return "its attention uses rotary position embeddings, which these methods do not recompute"
    if style == "torch_mha":
        mha: Any = module
        if not mha.batch_first or not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            return "its MultiheadAttention is not batch-first self-attention with shared projections"
    return None


def _prefix_tokens(model: nn.Module) -> int:
    for module in model.modules():
        count = getattr(module, "num_prefix_tokens", None)
        if isinstance(count, int):
            return count  # timm: class, distillation and register tokens
    for module in model.modules():
        if isinstance(getattr(module, "class_token", None), nn.Parameter):
            return 1  # torchvision
        if isinstance(getattr(module, "cls_token", None), nn.Parameter):  # transformers' embeddings
            registers = getattr(module, "register_tokens", None)
            distillation = isinstance(getattr(module, "distillation_token", None), nn.Parameter)
            return 1 + int(distillation) + (registers.shape[1] if isinstance(registers, nn.Parameter) else 0)
    return 0


def _readout_and_head(model: nn.Module) -> tuple[tuple[int, ...], ScoreHead]:
    """The rows the classifier reads and LeGrad's token-mean score head, per family."""
    for module in model.modules():
        encoder, heads = getattr(module, "encoder", None), getattr(module, "heads", None)
        if isinstance(getattr(encoder, "ln", None), nn.Module) and isinstance(heads, nn.Module):  # torchvision
            return (0,), _torchvision_score_head(encoder.ln, heads)  # type: ignore[union-attr]
        if callable(getattr(module, "forward_head", None)) and hasattr(module, "global_pool"):  # timm
            return _timm_readout(module)
        classifier = getattr(module, "classifier", None) or getattr(module, "cls_classifier", None)
        if isinstance(classifier, nn.Module) and hasattr(module, "config"):  # transformers
            return _hf_readout(module, classifier)
    raise NotATransformerError("no classification head after the encoder was recognised")


def _torchvision_score_head(final_norm: nn.Module, heads: nn.Module) -> ScoreHead:
    return lambda tokens: heads(final_norm(tokens.mean(dim=1)))


def _timm_readout(model: Any) -> tuple[tuple[int, ...], ScoreHead]:
    distilled = (
        isinstance(getattr(model, "head_dist", None), nn.Module) and getattr(model, "dist_token", None) is not None
    )
    rows: tuple[int, ...] = ((0, 1) if distilled else (0,)) if model.global_pool == "token" else ()

    def score(tokens: torch.Tensor) -> torch.Tensor:
        pooled = getattr(model, "fc_norm", nn.Identity())(model.norm(tokens.mean(dim=1)))
        pooled = getattr(model, "head_drop", nn.Identity())(pooled)
        return (model.head(pooled) + model.head_dist(pooled)) / 2 if distilled else model.head(pooled)

    return rows, score


def _hf_readout(model: Any, classifier: nn.Module) -> tuple[tuple[int, ...], ScoreHead]:
    distillation = getattr(model, "distillation_classifier", None)
    final_norm = next(
        (m.layernorm for m in model.modules() if isinstance(getattr(m, "layernorm", None), nn.Module)), nn.Identity()
    )

    def score(tokens: torch.Tensor) -> torch.Tensor:
        pooled = final_norm(tokens.mean(dim=1))
        return (classifier(pooled) + distillation(pooled)) / 2 if distillation is not None else classifier(pooled)

    return ((0, 1) if distillation is not None else (0,)), score


def find_layout(model: nn.Module) -> TransformerLayout:
    """The model's attention sites, prefix tokens and readout, found by structure;
    `NotATransformerError` with the reason when it has none these methods can read."""
    sites: list[AttentionSite] = []
    for block in model.modules():
        for child in block.children():
            style = _site_style(child)
            if style is None:
                continue
            reason = _refusal(child, style)
            if reason is not None:
                raise NotATransformerError(reason)
            sites.append(AttentionSite(block, child, style))
    if not sites:
        raise NotATransformerError("it has no self-attention blocks")
    rows, head = _readout_and_head(model)
    return TransformerLayout(tuple(sites), _prefix_tokens(model), rows, head, _patch_grid_shape(model))


def _patch_grid_shape(model: nn.Module) -> tuple[int, int] | None:
    """timm's patch embedding records its (rows, columns); the others' grids are square."""
    for module in model.modules():
        grid = getattr(module, "grid_size", None)
        if isinstance(grid, tuple) and len(grid) == 2 and all(isinstance(side, int) for side in grid):
            return grid[0], grid[1]
    return None


def transformer_unavailable(label: str, model: nn.Module, name: str) -> str | None:
    """The one-line reason `label` cannot explain `model`, or None when it can."""
    try:
        find_layout(model)
    except NotATransformerError as error:
        return f"{label} is for ViT-style transformers; {name} does not fit: {error}."
    return None


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(N, T, H*d) -> (N, H, T, d)."""
    n, tokens, width = t.shape
    return t.reshape(n, tokens, heads, width // heads).transpose(1, 2)


def _project_qkv(
    site: AttentionSite, x: torch.Tensor, rule: Propagation
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """q, k, v (N, H, T, d) and the logit scale, from the attention module's own projections."""
    module: Any = site.attention
    if site.style == "torch_mha":
        q, k, v = rule.linear(x, module.in_proj_weight, module.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (_heads(t, module.num_heads) for t in (q, k, v))
        return q, k, v, q.shape[-1] ** -0.5
    if site.style == "qkv":
        q, k, v = module.qkv(x).chunk(3, dim=-1)
        q, k, v = (_heads(t, module.num_heads) for t in (q, k, v))
        return module.q_norm(q), module.k_norm(k), v, float(module.scale)
    heads = module.q_proj.out_features // module.head_dim
    q, k, v = (_heads(proj(x), heads) for proj in (module.q_proj, module.k_proj, module.v_proj))
    return q, k, v, float(getattr(module, "scaling", module.head_dim ** -0.5))


def _output(site: AttentionSite, mixed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The attention's output projection (and timm's optional norm and gate) on the mixed values (N, T, H*d)."""
    module: Any = site.attention
    if site.style == "torch_mha":
        return module.out_proj(mixed)
    if site.style == "qkv":
        mixed = module.norm(mixed) if hasattr(module, "norm") else mixed
        if getattr(module, "gate", None) is not None:
            mixed = mixed * module.gate(x).sigmoid()
        return module.proj_drop(module.proj(mixed)) if hasattr(module, "proj_drop") else module.proj(mixed)
    return module.o_proj(mixed)


def _refuse_masks(*masks: Any) -> None:
    if any(mask is not None and mask is not False for mask in masks):
        raise NotATransformerError("attention masks are not supported by the recomputed attention")


def _replacement_forward(site: AttentionSite, rule: Propagation, capture: Capture) -> Callable[..., Any]:
    """A forward with the module's own signature and return type that records the probabilities."""

    def attend(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v, scale = _project_qkv(site, x, rule)
        logits = (rule.bilinear_operand(q) * scale) @ rule.bilinear_operand(k).transpose(-2, -1)
        probabilities = rule.softmax(logits)
        capture.attention_logits.append(logits)
        capture.attentions.append(probabilities)
        mixed = rule.bilinear_operand(probabilities) @ rule.bilinear_operand(v)
        return _output(site, mixed.transpose(1, 2).flatten(2), x), probabilities

    if site.style == "torch_mha":
        def torch_mha(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_padding_mask: Any = None,
                      need_weights: bool = True, attn_mask: Any = None, average_attn_weights: bool = True,
                      is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
            if not (query is key and key is value):
                raise NotATransformerError("only self-attention (query = key = value) is recomputed")
            _refuse_masks(key_padding_mask, attn_mask, is_causal)
            out, probabilities = attend(query)
            weights = probabilities.mean(dim=1) if average_attn_weights else probabilities
            return out, weights if need_weights else None
        return torch_mha
    if site.style == "qkv":
        def timm_attention(x: torch.Tensor, attn_mask: Any = None, is_causal: bool = False) -> torch.Tensor:
            _refuse_masks(attn_mask, is_causal)
            return attend(x)[0]
        return timm_attention

    def hf_attention(
        hidden_states: torch.Tensor, attention_mask: Any = None, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _refuse_masks(attention_mask)
        return attend(hidden_states)

    return hf_attention


@contextmanager
def _instance_forward(module: nn.Module, forward: Callable[..., Any]) -> Iterator[None]:
    """`module.forward` replaced for the duration; the class's own forward is restored on exit."""
    had_own = "forward" in module.__dict__
    previous = module.__dict__.get("forward")
    module.forward = forward
    try:
        yield
    finally:
        if had_own:
            module.forward = previous  # type: ignore[assignment]
        else:
            del module.forward


def _detached_block_input(
    _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Each block starts a fresh graph at its input (LeGrad: a layer's score reaches
    only that layer's attention)."""
    if args:
        return (args[0].detach().requires_grad_(True), *args[1:]), kwargs
    name = next(iter(kwargs))
    return args, {**kwargs, name: kwargs[name].detach().requires_grad_(True)}


@contextmanager
def captured(
    layout: TransformerLayout, rule: Propagation = PLAIN, detach_block_inputs: bool = False
) -> Iterator[Capture]:
    """Record attention probabilities and block outputs of the forward passes run inside."""
    capture = Capture()

    def record_output(_module: nn.Module, _args: Any, output: Any) -> None:
        capture.block_outputs.append(output[0] if isinstance(output, tuple) else output)

    with ExitStack() as stack:
        for site in layout.sites:
            stack.enter_context(_instance_forward(site.attention, _replacement_forward(site, rule, capture)))
            stack.callback(site.block.register_forward_hook(record_output).remove)
            if detach_block_inputs:
                stack.callback(site.block.register_forward_pre_hook(_detached_block_input, with_kwargs=True).remove)
        yield capture


def within_attention_budget(run: ChunkFn, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`run` on the first image, then on chunks of the rest whose recorded attention
    stays within `ATTENTION_BUDGET_BYTES`; the maps concatenated in order."""
    first, elements = run(x[:1], target[:1])
    per_chunk = max(1, ATTENTION_BUDGET_BYTES // max(1, 12 * elements))
    maps = [first]
    for start in range(1, x.shape[0], per_chunk):
        maps.append(run(x[start:start + per_chunk], target[start:start + per_chunk])[0])
    return torch.cat(maps)


def recorded_elements(capture: Capture) -> int:
    return sum(t.numel() for t in capture.attentions)
