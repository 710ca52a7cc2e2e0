"""Vision transformers: CAM layers on tokens (never the patch embedding), the token
reshapes, attention rollout's known answers, and the gallery end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from torchvision.models import SwinTransformer, VisionTransformer

import explain
from tests.apptest import run_until_idle, shown_result
from explain.methods.attention import attention_matrices
from explain.models import CustomModelError, cam_layer_options, preprocessing_of, with_settings, zoo_cam_layers
from tests.patience import generous

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def small_vit(seed: int = 0, layers: int = 2, heads: int = 2) -> VisionTransformer:
    """A 32 x 32 ViT with 8 x 8 patches (a 4 x 4 grid). torchvision zero-initialises the
    head, which would make every gradient zero: it gets random weights here."""
    torch.manual_seed(seed)
    model = VisionTransformer(
        image_size=32, patch_size=8, num_layers=layers, num_heads=heads, hidden_dim=16, mlp_dim=32, num_classes=4
    )
    torch.nn.init.normal_(model.heads.head.weight)
    return model


def small_swin(seed: int = 0) -> SwinTransformer:
    torch.manual_seed(seed)
    return SwinTransformer(
        patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=[2, 2], num_classes=4
    )


def transformer_bundle(name: str, model: torch.nn.Module) -> explain.ModelBundle:
    cam = zoo_cam_layers(name, model)
    return explain.make_bundle(
        name, model, [f"class {i}" for i in range(4)], input_size=32, resize_size=36, mean=(0.5,) * 3, std=(0.5,) * 3,
        cam_layer=cam.layer, linear_head=cam.head, cam_reshape=cam.reshape, device="cpu",
    )


def test_transformers_get_token_layers_never_the_patch_embedding():
    vit = zoo_cam_layers("vit_b_16", small_vit(layers=3))
    assert vit == ("encoder.layers.encoder_layer_2.ln_1", None, "vit_tokens")
    swin = zoo_cam_layers("swin_t", small_swin())
    assert swin == ("norm", "head", "channels_last")
    for name, model in (("vit_b_16", small_vit()), ("swin_t", small_swin())):
        bundle = transformer_bundle(name, model)
        assert cam_layer_options(bundle) == [bundle.cam_layer]
        patch_embedding = "conv_proj" if name.startswith("vit") else "features.0.0"
        with pytest.raises(CustomModelError, match="token layer"):
            with_settings(bundle, preprocessing_of(bundle), patch_embedding)


def test_vit_token_grid_is_the_patch_embeddings_layout():
    """Token 1 + r * g + c is the patch at row r, column c: the reshape gives back the
    patch embedding convolution's own (N, C, g, g) output."""
    model = small_vit().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model._process_input(x)
        tokens = torch.cat([model.class_token.expand(2, -1, -1), tokens], dim=1)
        grid = model.conv_proj(x)
    torch.testing.assert_close(
        explain.ModelBundle.cam_feature_maps(transformer_bundle("vit_b_16", model), tokens), grid
    )


def test_cam_on_swin_is_exact_at_the_token_grid():
    """Swin pools its final `norm` tokens and applies the linear head: CAM there, on the
    permuted channels-last tokens, averages to the logit minus the bias; the registry's
    map is that token map upsampled bilinearly."""
    bundle = transformer_bundle("swin_t", small_swin())
    model = bundle.model
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    store = {}
    handle = model.norm.register_forward_hook(lambda m, i, o: store.setdefault("tokens", o))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    features = store["tokens"].permute(0, 3, 1, 2)  # (N, C, h, w)
    token_map = torch.einsum("nc,nchw->nhw", model.head.weight[[1, 1]], features)
    torch.testing.assert_close(token_map.mean(dim=(1, 2)), logits[:, 1] - model.head.bias[1], rtol=1e-5, atol=1e-5)
    upsampled = torch.nn.functional.interpolate(
        token_map[:, None], size=(32, 32), mode="bilinear", align_corners=False
    )[:, 0]
    np.testing.assert_allclose(explain.attribute(bundle, x, "cam", target=1), upsampled.numpy(), rtol=1e-4, atol=1e-5)


def test_gradient_cams_on_vit_are_not_degenerate():
    """At the last block's *output* every patch token's gradient would be 0 (only the
    class token reaches the head); at its `ln_1` they are not."""
    bundle = transformer_bundle("vit_b_16", small_vit())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for method in ("gradcam", "gradcam_plusplus", "xgradcam", "layercam", "eigencam"):
        maps = explain.attribute(bundle, x, method, target=1)
        assert maps.shape == (2, 32, 32) and np.isfinite(maps).all() and maps.max() > 0, method


def set_attention(model: VisionTransformer, query_key_scale: float) -> None:
    """q = k = scale * (normalised token), value unchanged. Scale 0: every token attends
    to all T tokens equally; a huge scale: each token attends only to itself (the
    normalised tokens all have norm sqrt(d), so with one head q_i . k_j peaks at j = i)."""
    d = model.hidden_dim
    with torch.no_grad():
        for block in model.encoder.layers:
            weight = block.self_attention.in_proj_weight
            weight[: 2 * d] = query_key_scale * torch.cat([torch.eye(d), torch.eye(d)])
            block.self_attention.in_proj_bias[: 2 * d] = 0


def test_rollout_of_identity_attention_is_uniform_zero():
    """rownorm(I + I) = I in every block: the class token only ever attends to itself,
    its row over the patches is 0 everywhere."""
    model = small_vit(layers=3, heads=1)
    set_attention(model, 1e3)
    bundle = transformer_bundle("vit_b_16", model)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    attentions = attention_matrices(bundle.model, x)
    torch.testing.assert_close(attentions[0], torch.eye(17).expand(2, 17, 17))
    np.testing.assert_array_equal(explain.attribute(bundle, x, "attention_rollout"), np.zeros((2, 32, 32), np.float32))


def test_rollout_of_uniform_attention_has_its_closed_form():
    """A = U (all 1/T): rownorm(U + I) = (U + I) / 2, and since U^2 = U the product over L
    blocks is 2^-L I + (1 - 2^-L) U: every patch gets (1 - 2^-L) / T."""
    layers, tokens = 3, 17
    model = small_vit(layers=layers)
    set_attention(model, 0.0)
    bundle = transformer_bundle("vit_b_16", model)
    x = torch.randn(1, 3, 32, 32)
    maps = explain.attribute(bundle, x, "attention_rollout", target=0)
    np.testing.assert_allclose(maps, np.full((1, 32, 32), (1 - 2.0**-layers) / tokens, np.float32), rtol=1e-5)
    # Class-agnostic, and the model is left as it was (need_weights is never patched).
    np.testing.assert_array_equal(explain.attribute(bundle, x, "attention_rollout", target=3), maps)


def test_methods_that_cannot_apply_say_why():
    vit = transformer_bundle("vit_b_16", small_vit())
    swin = transformer_bundle("swin_t", small_swin())
    reasons = {
        key: explain.get_method(key).unavailable_reason(vit) for key in ("cam", "guided_gradcam", "attention_rollout")
    }
    assert "global average pooling" in reasons["cam"]
    assert "tokens" in reasons["guided_gradcam"]
    assert reasons["attention_rollout"] is None
    assert "windowed" in explain.get_method("attention_rollout").unavailable_reason(swin)
    assert explain.get_method("cam").unavailable_reason(swin) is None


@pytest.mark.parametrize("name, model, methods, unavailable", [
    ("vit_b_16", small_vit(), ["gradcam", "eigencam", "scorecam", "attention_rollout"], "CAM"),
    ("swin_t", small_swin(), ["cam", "gradcam_plusplus", "layercam", "xgradcam"], "Attention rollout"),
])
def test_transformers_are_explained_end_to_end_in_the_gallery(name, model, methods, unavailable):
    at = AppTest.from_file(APP, default_timeout=generous(30))
    at.session_state["custom_bundle"] = transformer_bundle(name, model)
    at.session_state["samples"] = ["chelsea", "coffee"]
    at.session_state["methods"] = methods
    at.session_state["param:scorecam:max_channels"] = 16
    run_until_idle(at)
    result = shown_result(at, "gallery")
    assert [s.key for s in result.analysis.methods] == methods
    assert all(m.shape == (2, 32, 32) and np.isfinite(m).all() for m in result.maps.values())
    assert len(at.get("image")) == 2 * (1 + len(methods))
    assert any(f"**{unavailable}**" in c.value for c in at.caption)
