"""Class-specific transformer methods (Chefer's gradient-weighted attention, LeGrad,
AttnLRP) and the attention internals under them: known answers on hand-built ViTs,
agreement with the paper's algorithm and with torch-cam's LeGrad, relevance
conservation, and torchvision / timm / Hugging Face models alike."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchcam.methods import LeGrad
from torchvision.models import VisionTransformer

import explain
from explain.methods import transformer_internals
from explain.methods.attention import chefer_relevance, legrad_maps
from explain.methods.attnlrp import attnlrp_context
from explain.methods.transformer_internals import find_layout
from tests.test_transformers import small_swin, small_vit

CLASS_SPECIFIC = ("chefer", "legrad", "attnlrp")


def bundle_of(model: nn.Module, classes: int = 4, size: int = 32) -> explain.ModelBundle:
    return explain.make_bundle("test vit", model, [f"class {i}" for i in range(classes)], input_size=size,
                               mean=(0.5,) * 3, std=(0.5,) * 3, device="cpu")


def identity_attention_vit(rows: int, columns: int) -> nn.Module:
    """A one-block timm ViT (8 x 8 patches, no class token, average-pooled head) whose
    attention is the identity: the position embeddings are one-hot, queries and keys
    read only them (logit 40 on the diagonal, 0 elsewhere). Values carry two evidence
    channels, the patch's mean red (class 0's evidence) and mean green (class 1's);
    every norm is the identity and the MLP is zero, so logit_c = 2 * mean over patches
    of evidence c."""
    tokens = rows * columns
    width = tokens + 2
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=(8 * rows, 8 * columns), patch_size=8, num_classes=2, embed_dim=width, depth=1, num_heads=1,
        mlp_ratio=1.0, qkv_bias=False, class_token=False, global_pool="avg", fc_norm=False,
    )
    model.norm, model.fc_norm, model.blocks[0].norm1 = nn.Identity(), nn.Identity(), nn.Identity()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.patch_embed.proj.weight[tokens, 0] = 1 / 64
        model.patch_embed.proj.weight[tokens + 1, 1] = 1 / 64
        model.pos_embed[0, :, :tokens] = torch.eye(tokens)
        query_key = (40 * width**0.5) ** 0.5
        qkv = model.blocks[0].attn.qkv.weight
        qkv[:tokens, :tokens] = query_key * torch.eye(tokens)
        qkv[width:width + tokens, :tokens] = query_key * torch.eye(tokens)
        qkv[2 * width + tokens, tokens] = qkv[2 * width + tokens + 1, tokens + 1] = 1
        model.blocks[0].attn.proj.weight.copy_(torch.eye(width))
        model.head.weight[0, tokens] = model.head.weight[1, tokens + 1] = 1
    return model.eval()


def patch_means(maps: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """(N, 8 rows, 8 columns) maps -> their mean over each 8 x 8 patch (N, rows * columns)."""
    return maps.reshape(maps.shape[0], rows, 8, columns, 8).mean(axis=(2, 4)).reshape(maps.shape[0], -1)


def evidence_image(rows: int, columns: int) -> torch.Tensor:
    """Red (class 0's evidence) in the first patch, green (class 1's) in the last."""
    x = torch.zeros(1, 3, 8 * rows, 8 * columns)
    x[0, 0, :8, :8] = 1
    x[0, 1, -8:, -8:] = 1
    return x


def test_identity_attention_model_has_the_identity_attention():
    model = identity_attention_vit(2, 2)
    layout = find_layout(model)
    assert (layout.prefix_tokens, layout.readout_rows, layout.grid) == (0, (), (2, 2))
    with torch.no_grad():
        logits = model(evidence_image(2, 2))
    torch.testing.assert_close(logits, torch.tensor([[0.5, 0.5]]))  # 2 * (1 patch of 4) per class
    torch.testing.assert_close(explain.methods.attention.attention_matrices(model, evidence_image(2, 2))[0],
                               torch.eye(4)[None], atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", CLASS_SPECIFIC)
def test_class_specific_maps_follow_the_patch_with_the_class_evidence(method):
    """On the identity-attention ViT each class's map peaks on the patch holding that
    class's evidence and nowhere else."""
    bundle = bundle_of(identity_attention_vit(2, 2), classes=2, size=16)
    x = evidence_image(2, 2)
    for target, evidence_patch in ((0, 0), (1, 3)):
        means = patch_means(explain.attribute(bundle, x, method, target=target), 2, 2)[0]
        others = np.delete(means, evidence_patch)
        assert means[evidence_patch] > others.max() + 1e-3, (method, target, means)


@pytest.mark.parametrize("method", CLASS_SPECIFIC)
def test_two_patch_model_maps_for_two_classes_differ_where_the_evidence_differs(method):
    """Two patches: red evidence for class 0 in the left, green for class 1 in the right.
    Class 0's map is higher than class 1's on the left patch and lower on the right."""
    bundle = bundle_of(identity_attention_vit(1, 2), classes=2, size=8)
    x = evidence_image(1, 2)
    class0, class1 = (patch_means(explain.attribute(bundle, x, method, target=t), 1, 2)[0] for t in (0, 1))
    assert class0[0] > class1[0] + 1e-3 and class1[1] > class0[1] + 1e-3, (method, class0, class1)


def torchvision_reference_attention(
    model: VisionTransformer, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The logits of torchvision's ViT from its own modules, with each block's attention
    probabilities taken from `MultiheadAttention(need_weights=True,
    average_attn_weights=False)` and the attention output rebuilt from them (checked
    against the module's own output), so gradients with respect to them exist."""
    n = x.shape[0]
    tokens = (
        torch.cat([model.class_token.expand(n, -1, -1), model._process_input(x)], dim=1) + model.encoder.pos_embedding
    )
    attentions = []
    for block in model.encoder.layers:
        mha = block.self_attention
        y = block.ln_1(tokens)
        expected, probabilities = mha(y, y, y, need_weights=True, average_attn_weights=False)
        d = mha.embed_dim
        values = F.linear(y, mha.in_proj_weight[2 * d:], mha.in_proj_bias[2 * d:])
        values = values.reshape(n, -1, mha.num_heads, d // mha.num_heads).transpose(1, 2)
        out = mha.out_proj((probabilities @ values).transpose(1, 2).reshape(n, -1, d))
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        attentions.append(probabilities)
        tokens = tokens + out
        tokens = tokens + block.mlp(block.ln_2(tokens))
    return model.heads(model.encoder.ln(tokens)[:, 0]), attentions


def timm_reference_attention(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """timm's ViT on its non-fused path (`fused_attn = False`), the probabilities taken at
    the input of each block's `attn_drop` (the tensor multiplied into the values)."""
    attentions: list[torch.Tensor] = []
    handles = [
        block.attn.attn_drop.register_forward_hook(lambda m, i, o: attentions.append(o)) for block in model.blocks
    ]
    fused = [block.attn.fused_attn for block in model.blocks]
    try:
        for block in model.blocks:
            block.attn.fused_attn = False
        logits = model(x)
    finally:
        for block, flag in zip(model.blocks, fused, strict=False):
            block.attn.fused_attn = flag
        for handle in handles:
            handle.remove()
    return logits, attentions


def paper_chefer(logits: torch.Tensor, attentions: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Chefer et al. 2021b, eqs. for self-attention encoders: R^{ii} = I;
    Abar = E_h((grad A ⊙ A)^+); R^{ii} = R^{ii} + Abar R^{ii}; the class token's row
    over the patch tokens. One image at a time, written from the equations."""
    rows = []
    for i in range(logits.shape[0]):
        gradients = torch.autograd.grad(logits[i, target[i]], attentions, retain_graph=True)
        relevance = torch.eye(attentions[0].shape[-1])
        for attention, gradient in zip(attentions, gradients, strict=False):
            a_bar = (gradient[i] * attention[i]).clamp(min=0).mean(dim=0)
            relevance = relevance + a_bar @ relevance
        rows.append(relevance[0, 1:])
    return torch.stack(rows)


def test_chefer_equals_the_papers_algorithm_on_torchvision_and_timm_vits():
    torch.manual_seed(0)
    tv = small_vit(seed=3)
    tm = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, num_heads=2,
                           embed_dim=16, num_classes=4)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    target = torch.tensor([0, 2, 3])
    for model, reference in ((tv, torchvision_reference_attention), (tm, timm_reference_attention)):
        bundle = bundle_of(model)
        with torch.enable_grad():
            expected = paper_chefer(*reference(bundle.model, x.clone().requires_grad_(True)), target).reshape(3, 4, 4)
        raw = explain.get_method("chefer").compute(bundle, x.clone().requires_grad_(True), target, {})
        torch.testing.assert_close(raw, expected, atol=1e-5, rtol=1e-4)
        assert raw.std() > 0


def test_chefer_relevance_of_one_block_is_identity_plus_weighted_attention():
    a = torch.softmax(torch.randn(2, 3, 5, 5), dim=-1)
    g = torch.randn(2, 3, 5, 5)
    expected = torch.eye(5) + (a * g).clamp(min=0).mean(dim=1)
    torch.testing.assert_close(chefer_relevance([a], [g]), expected)


def test_legrad_equals_torchcams_legrad_on_torchvision_vit():
    model = small_vit(seed=1, layers=3).eval()
    model.requires_grad_(False)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    target = [1, 3]
    for last in (0, 2):
        blocks = list(model.encoder.layers)[-last if last else 0:]
        with LeGrad(model, blocks) as extractor:
            scores = model(x)
            expected = extractor(target, scores, normalized=False)[0]
        ours = legrad_maps(model, x, torch.tensor(target), last_blocks=last)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)
        assert ours.std() > 0


def bias_free_vit(seed: int) -> VisionTransformer:
    model = small_vit(seed=seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
        model.class_token.normal_()
    return model.eval()


def zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    return model.eval()


def bias_free_sources(seed: int) -> list[tuple[str, nn.Module, list[nn.Parameter]]]:
    """A bias-free ViT per attention style, with its additive embeddings (class token,
    position embeddings): torchvision (fused in_proj), timm (qkv), transformers (q/k/v)."""
    tv = bias_free_vit(seed)
    torch.manual_seed(seed)
    tm = zero_biases(timm_vit())
    hf = zero_biases(hf_vit(False))
    embeddings = hf.vit.embeddings
    return [
        ("torchvision", tv, [tv.class_token, tv.encoder.pos_embedding]),
        ("timm", tm, [tm.cls_token, tm.pos_embed]),
        ("transformers", LogitsOnly(hf), [embeddings.cls_token, embeddings.position_embeddings]),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attnlrp_conserves_relevance_on_a_bias_free_vit(seed):
    """Relevance of the pixels, class token and position embeddings, plus the Taylor bias
    the softmax rule absorbs (relevance into the probabilities minus out of the logits),
    adds up to the logit within 1 %; with the softmax detached (CP-LRP) the inputs alone do."""
    for source, model, extras in bias_free_sources(seed):
        model.requires_grad_(False)
        for extra in extras:
            extra.requires_grad_(True)
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
        target = torch.tensor([1, 2])
        for detached in (False, True):
            with attnlrp_context(model, 1e-9, detach_softmax=detached) as capture:
                logits = model(x).gather(1, target[:, None])
                inner = [] if detached else [*capture.attentions, *capture.attention_logits]
                gradients = torch.autograd.grad(logits.sum(), [x, *extras, *inner])
            with torch.no_grad():
                inputs = sum((value * gradient).sum() for value, gradient in zip([x, *extras], gradients, strict=False))
                blocks = len(capture.attentions)
                into = sum((v * g).sum() for v, g in zip(inner[:blocks], gradients[3:3 + blocks], strict=False))
                absorbed = into - sum(
                    (v * g).sum() for v, g in zip(inner[blocks:], gradients[3 + blocks :], strict=False)
                )
                total = logits.sum()
            assert abs(float(inputs + absorbed - total)) <= 0.01 * abs(float(total)), (source, detached, inputs, total)
            if not detached:
                assert abs(float(absorbed)) > 1e-4, (
                    source
                )  # the softmax rule does absorb: the accounting is not vacuous


def test_attnlrp_map_is_input_times_modified_gradient_summed_over_channels():
    """CP-LRP on a bias-free ViT whose class token and position embeddings are zero: the
    registry's map (channel sum of input x gradient) sums to each image's logit."""
    bundle = bundle_of(bias_free_vit(0))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        bundle.model.class_token.zero_()
        bundle.model.encoder.pos_embedding.zero_()
        logits = bundle.model(x)[[0, 1], [0, 1]]
    maps = explain.attribute(bundle, x, "attnlrp", target=[0, 1], softmax="detached", epsilon=1e-9)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), logits.numpy(), rtol=1e-3)


def hf_vit(distilled: bool) -> nn.Module:
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher, ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    sizes = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 32, "num_labels": 4}
    if distilled:
        return DeiTForImageClassificationWithTeacher(DeiTConfig(**sizes)).eval()
    return ViTForImageClassification(ViTConfig(**sizes)).eval()


class LogitsOnly(nn.Module):
    """What a bundle holds for a transformers classifier: the logits tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


def timm_vit(**kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, num_heads=2,
                             embed_dim=16, num_classes=4, **kwargs).eval()


@pytest.mark.parametrize("name, build, prefix, rows", [
    ("torchvision", lambda: small_vit(), 1, (0,)),
    ("timm", lambda: timm_vit(), 1, (0,)),
    ("timm registers", lambda: timm_vit(reg_tokens=4), 5, (0,)),
    ("timm average pool", lambda: timm_vit(class_token=False, global_pool="avg"), 0, ()),
    ("timm deit distilled", lambda: timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=32,
                                                      patch_size=8, depth=2, num_heads=2, embed_dim=16, num_classes=4),
     2, (0, 1)),
    ("hf vit", lambda: LogitsOnly(hf_vit(False)), 1, (0,)),
    ("hf deit distilled", lambda: LogitsOnly(hf_vit(True)), 2, (0, 1)),
])
def test_every_model_source_is_explained_and_left_as_it_was(name, build, prefix, rows):
    bundle = bundle_of(build())
    layout = find_layout(bundle.model)
    assert (layout.prefix_tokens, layout.readout_rows, len(layout.sites)) == (prefix, rows, 2), name
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = bundle.model(x)
    for method in ("attention_rollout", *CLASS_SPECIFIC):
        maps = explain.attribute(bundle, x, method, target=[0, 3])
        assert maps.shape == (2, 32, 32) and np.isfinite(maps).all() and maps.std() > 0, (name, method)
    assert all("forward" not in site.attention.__dict__ for site in layout.sites)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x), before, atol=0, rtol=0)
    # LeGrad's score head reads the token mean through the model's own final norm and head.
    with torch.no_grad():
        scores = layout.score_head(torch.randn(2, 16 + prefix, 16))
    assert scores.shape == (2, 4)


def test_chunks_sized_by_the_attention_budget_give_the_same_maps(monkeypatch):
    """A budget below one image's attention runs one image per chunk: same maps."""
    bundle = bundle_of(timm_vit(reg_tokens=2))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    whole = {
        method: explain.attribute(bundle, x, method, target=[0, 1, 2])
        for method in ("attention_rollout", *CLASS_SPECIFIC)
    }
    monkeypatch.setattr(transformer_internals, "ATTENTION_BUDGET_BYTES", 1)
    calls = []
    original = transformer_internals.within_attention_budget

    def counting(run, images, targets):
        return original(lambda i, t: calls.append(len(i)) or run(i, t), images, targets)

    for module in (explain.methods.attention, explain.methods.attnlrp):
        monkeypatch.setattr(module, "within_attention_budget", counting)
    for method, maps in whole.items():
        calls.clear()
        np.testing.assert_allclose(explain.attribute(bundle, x, method, target=[0, 1, 2]), maps, rtol=1e-5, atol=1e-7)
        assert calls == [1, 1, 1], (method, calls)


def test_swin_and_cnns_are_refused_with_a_reason():
    swin = bundle_of(small_swin())
    for method in ("attention_rollout", *CLASS_SPECIFIC):
        reason = explain.get_method(method).unavailable_reason(swin)
        assert reason is not None and "windowed" in reason, reason
    cnn = bundle_of(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    assert "no self-attention" in explain.get_method("chefer").unavailable_reason(cnn)
