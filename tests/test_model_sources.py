"""The model-source registry, offline, on tiny models made here: timm (`pretrained=False`,
saved as safetensors), Hugging Face (tiny `ViTConfig` / `ConvNextConfig` + `save_pretrained`
with the image processor), ONNX exports and the operator's own factory. Nothing downloads:
conftest sets `HF_HUB_OFFLINE=1` and `EXPLAIN_ALLOW_DOWNLOADS=0` for the whole run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import explain
from explain.methods.registry import attribute, list_methods
from explain.models import CustomModelError, ModelUnavailableError, load_model
from explain.models.sources import list_sources, split_reference
from tests.tiny_models import CLASSES, save_safetensors, save_tiny_models

CHEAP = {
    "n_steps": 2,
    "n_samples": 4,
    "max_evals": 50,
    "n_masks": 8,
    "max_channels": 4,
    "mask_side": 8,
    "n_segments": 4,
    "window": 8,
    "stride": 8,
}  # enough to run each method once, fast


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_tiny_models(tmp_path_factory.mktemp("models"))


REFERENCES = {
    "timm_convnext": ("timm:test_convnext", "timm_convnext"),
    "timm_vit": ("timm:test_vit", "timm_vit"),
    "hf_vit": (None, "hf_vit"),
    "hf_convnext": (None, "hf_convnext"),
}


def load_made(made: dict[str, Path], key: str) -> explain.ModelBundle:
    ref, path_key = REFERENCES[key]
    if ref is None:
        return load_model(f"hf:{made[path_key]}", "cpu")
    return load_model(ref, "cpu", weights=made[path_key])


def photo(size: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8))


def test_every_source_is_registered_once_with_what_it_takes() -> None:
    names = [s.name for s in list_sources()]
    assert names == ["torchvision", "timm", "hf", "onnx", "torchscript", "factory"]
    assert all(s.reference and s.description and s.weights in ("required", "optional", "none") for s in list_sources())
    assert split_reference("resnet18")[0].name == "torchvision"
    assert split_reference("timm:convnext_tiny.fb_in1k") == (split_reference("timm:x")[0], "convnext_tiny.fb_in1k")
    with pytest.raises(CustomModelError, match="say which model"):
        split_reference("hf:")


@pytest.mark.parametrize("key", ["timm_convnext", "timm_vit"])
def test_timm_bundle_equals_timms_forward_on_timms_transforms(made: dict[str, Path], key: str) -> None:
    import timm
    from safetensors.torch import load_file

    bundle = load_made(made, key)
    reference = timm.create_model(REFERENCES[key][0].split(":")[1], pretrained=False, num_classes=CLASSES)
    reference.load_state_dict(load_file(str(made[key])))
    reference.eval()
    config = timm.data.resolve_model_data_config(reference)
    x = timm.data.create_transform(**config)(photo()).unsqueeze(0)
    with torch.no_grad():
        expected = reference(x)
    torch.testing.assert_close(bundle.logits(x), expected, rtol=1e-5, atol=1e-5)
    assert bundle.input_size == config["input_size"][-1] and bundle.mean == tuple(config["mean"])
    assert bundle.resize_size == int(config["input_size"][-1] / config["crop_pct"])
    assert bundle.source == "timm" and bundle.num_classes == CLASSES and len(bundle.weights_sha256) == 64
    assert bundle.weights_sha256 == __import__("hashlib").sha256(made[key].read_bytes()).hexdigest()


@pytest.mark.parametrize("key", ["hf_vit", "hf_convnext"])
def test_hf_bundle_equals_the_models_forward_on_the_processors_pixels(made: dict[str, Path], key: str) -> None:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    bundle = load_made(made, key)
    model = AutoModelForImageClassification.from_pretrained(made[key]).eval()
    processor = AutoImageProcessor.from_pretrained(made[key])
    pixels = processor(images=[photo(), photo(seed=1)], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
    torch.testing.assert_close(bundle.logits(pixels), expected, rtol=1e-5, atol=1e-5)
    assert bundle.class_names == ["cat", "dog", "fox"] and bundle.source == "hf"
    assert bundle.input_size == pixels.shape[-1] and bundle.preprocess(photo()).shape == pixels.shape[1:]


def test_vit_cam_layers_are_patch_tokens_never_the_patch_embedding(made: dict[str, Path]) -> None:
    timm_vit, hf_vit = load_made(made, "timm_vit"), load_made(made, "hf_vit")
    assert (timm_vit.cam_layer, timm_vit.linear_head, timm_vit.cam_reshape) == ("blocks.5.norm1", None, "tokens:1")
    assert hf_vit.cam_layer.startswith("model.vit.") and hf_vit.cam_layer.endswith("1.layernorm_before")
    assert hf_vit.cam_reshape == "tokens:1"
    for bundle, side in ((timm_vit, 10), (hf_vit, 4)):
        assert "patch" not in bundle.cam_layer
        tokens: list[torch.Tensor] = []
        hook = bundle.model.get_submodule(bundle.cam_layer).register_forward_hook
        handle = hook(lambda m, i, o, seen=tokens: seen.append(o))
        bundle.logits(torch.zeros(1, 3, bundle.input_size, bundle.input_size))
        handle.remove()
        assert bundle.cam_feature_maps(tokens[0]).shape[-2:] == (side, side)  # the patch grid, prefix tokens dropped


def test_deit_distillation_and_register_tokens_are_dropped() -> None:
    from explain.models.bundle import cam_reshape_function

    grid = torch.arange(2 * 16 * 4, dtype=torch.float32).reshape(2, 16, 4)
    for prefix in (0, 1, 2, 5):
        tokens = torch.cat([torch.full((2, prefix, 4), -1.0), grid], dim=1)
        maps = cam_reshape_function(f"tokens:{prefix}")(tokens)
        assert maps.shape == (2, 4, 4, 4) and torch.equal(maps[:, :, 1, 2], grid[:, 6])


@pytest.mark.slow
@pytest.mark.parametrize("key", list(REFERENCES))
def test_every_registered_method_runs_or_says_why(made: dict[str, Path], key: str) -> None:
    bundle = load_made(made, key)
    x = bundle.preprocess_batch([photo()])
    refused = {}
    for method in list_methods():
        reason = method.unavailable_reason(bundle)
        if reason is not None:
            assert len(reason) > 20 and "\n" not in reason
            refused[method.key] = reason
            continue
        params = {p.name: max(CHEAP[p.name], int(p.min or 1)) for p in method.params if p.name in CHEAP}
        maps = attribute(bundle, x, method.key, **params)
        assert maps.shape == (1, bundle.input_size, bundle.input_size) and np.isfinite(maps).all(), method.key
    assert "gradcam" not in refused and "integrated_gradients" not in refused


def _onnx_export(model: torch.nn.Module, path: Path, size: int) -> Path:
    torch.onnx.export(
        model.eval(),
        (torch.randn(1, 3, size, size),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
    )
    return path


def test_onnx_round_trip_equals_the_original_and_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime

    torch.manual_seed(0)  # BatchNorms fold into equal (zero) biases, which torch's exporter stores once
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.Conv2d(6, 6, 3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, CLASSES),
    ).eval()
    path = _onnx_export(model, tmp_path / "tiny.onnx", 16)
    bundle = load_model(f"onnx:{path}", "cpu")
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(bundle.logits(x), expected, rtol=1e-5, atol=1e-5)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        bundle.logits(x[:1]).numpy(), session.run(None, {"input": x[:1].numpy()})[0], rtol=1e-4, atol=1e-5
    )
    assert bundle.input_size == 16 and bundle.cam_layer is not None and bundle.source == "onnx"
    assert attribute(bundle, x[:1], "gradcam").shape == (1, 16, 16)


def test_onnx_with_an_unsupported_operator_gets_one_clear_message(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Hardmax", ["input"], ["logits"], axis=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(CustomModelError, match=r"odd.onnx: onnx2torch cannot convert the operator Hardmax"):
        load_model(f"onnx:{path}", "cpu")


def _hf_folder_variant(made: dict[str, Path], tmp_path: Path, name: str) -> Path:
    import shutil

    folder = tmp_path / name
    shutil.copytree(made["hf_vit"], folder)
    return folder


def test_hf_folder_with_only_a_pickle_checkpoint_is_refused_unread(made: dict[str, Path], tmp_path: Path) -> None:
    folder = _hf_folder_variant(made, tmp_path, "pickled")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 not read")
    with pytest.raises(CustomModelError, match=r"only pytorch_model.bin \(pickle, never unpickled here\)"):
        load_model(f"hf:{folder}", "cpu")


def test_hf_config_asking_for_remote_code_is_refused(made: dict[str, Path], tmp_path: Path) -> None:
    folder = _hf_folder_variant(made, tmp_path, "remote")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CustomModelError, match="custom code \\(auto_map\\), which is never run"):
        load_model(f"hf:{folder}", "cpu")


def test_hub_id_without_downloads_says_so() -> None:
    with pytest.raises(ModelUnavailableError, match="downloads are off"):
        load_model("hf:google/vit-base-patch16-224", "cpu")
    with pytest.raises(CustomModelError, match="needs a weights file .* or downloads allowed"):
        load_model("timm:convnext_tiny.fb_in1k", "cpu")


def test_unknown_timm_name_and_wrong_architecture_weights(made: dict[str, Path]) -> None:
    with pytest.raises(ModelUnavailableError, match="Unknown timm model 'convnext_tinny'. Did you mean convnext_tiny"):
        load_model("timm:convnext_tinny", "cpu", weights=made["timm_convnext"])
    with pytest.raises(
        CustomModelError, match="convnext.safetensors does not fit timm test_vit with \\d+ classes: .*missing"
    ):
        load_model("timm:test_vit", "cpu", weights=made["timm_convnext"])


def test_a_factory_that_raises_or_returns_no_module_gets_one_message(tmp_path: Path) -> None:
    weights = save_safetensors(torch.nn.Linear(2, 2), tmp_path / "w.safetensors")
    with pytest.raises(CustomModelError, match="factory tests.factory_models:broken raised RuntimeError: no GPU here"):
        load_model("factory:tests.factory_models:broken", "cpu", weights=weights)
    with pytest.raises(CustomModelError, match="has no function missing"):
        load_model("factory:tests.factory_models:missing", "cpu", weights=weights)
    with pytest.raises(CustomModelError, match="need a weights file"):
        load_model("factory:tests.factory_models:build", "cpu")
    with pytest.raises(CustomModelError, match="w.safetensors does not fit the model tests.factory_models:build"):
        load_model("factory:tests.factory_models:build", "cpu", weights=weights)


def test_operator_setting_and_cli_flags_decide_downloads() -> None:
    from explain.config import downloads_allowed, read_operator_config

    assert read_operator_config({}, {}).allow_downloads is False  # hosted: off unless the operator says so
    assert read_operator_config({"explain": {"allow_downloads": True}}, {}).allow_downloads is True
    assert read_operator_config({}, {"EXPLAIN_ALLOW_DOWNLOADS": "1"}).allow_downloads is True
    assert downloads_allowed({}) is False and downloads_allowed({"EXPLAIN_ALLOW_DOWNLOADS": "yes"}) is True


def test_factory_model_evaluates_over_three_checkpoint_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed workflow: one in-house architecture, many checkpoint files, one command."""
    import pandas as pd

    from explain.evaluation.cli import main as explain_main
    from tests.factory_models import build
    from tests.synthetic import labelled_folder

    for seed in range(3):
        torch.manual_seed(seed)
        save_safetensors(build(), tmp_path / f"colournet-{seed + 1}.safetensors")
    data = labelled_folder(tmp_path / "images", per_class=3)
    out = tmp_path / "results"
    code = explain_main(
        [
            "evaluate",
            "--factory",
            "tests.factory_models:build",
            "--weights",
            str(tmp_path / "*.safetensors"),
            "--data",
            str(data),
            "--methods",
            "saliency,cam",
            "--metrics",
            "deletion_insertion",
            "--param",
            "deletion_insertion.steps=4",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--quiet",
            "--offline",
        ]
    )
    assert code == 0, capsys.readouterr().err
    rows = pd.read_parquet(out)
    assert list(rows["model"].unique()) == [f"colournet-{i}.safetensors" for i in (1, 2, 3)]
    assert len(rows) == 3 * 6 * 2 and rows["auc_deletion"].between(0, 1).all()
    assert set(rows["prediction"]) <= {0, 1, 2}
    probabilities = rows[rows["method"] == "cam"].pivot(
        index="image_index", columns="model_index", values="probability"
    )
    assert not np.allclose(probabilities[0], probabilities[1])  # three different models, not one loaded thrice


def test_report_cli_loads_a_timm_file_and_an_hf_folder(made: dict[str, Path], tmp_path: Path) -> None:
    from reports import cli

    image = tmp_path / "photo.png"
    photo(64).save(image)
    for args in (
        ["--arch", "timm:test_convnext", "--weights", str(made["timm_convnext"])],
        ["--model", f"hf:{made['hf_vit']}"],
    ):
        out = tmp_path / "report.html"
        assert (
            cli.main(
                [
                    "build",
                    *args,
                    "--images",
                    str(image),
                    "--methods",
                    "gradcam",
                    "--out",
                    str(out),
                    "--quiet",
                    "--offline",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        assert "Grad-CAM" in out.read_text()
    assert (
        cli.main(
            [
                "build",
                "--model",
                "timm:nonexistent_net",
                "--images",
                str(image),
                "--out",
                str(tmp_path / "x.html"),
                "--offline",
            ]
        )
        == 2
    )


TIMM_TRANSFORMERS = {  # tiny variants of each family: (timm name, size overrides, expected CAM layers)
    "deit_distilled": ("deit_tiny_distilled_patch16_224", {"depth": 1}, ("blocks.0.norm1", None, "tokens:2")),
    "vit_registers": ("vit_tiny_patch16_224", {"depth": 1, "reg_tokens": 4}, ("blocks.0.norm1", None, "tokens:5")),
    "eva02": ("eva02_tiny_patch14_224", {"depth": 1}, ("blocks.0.norm1", None, "tokens:1")),
    "swin": (
        "swin_tiny_patch4_window7_224",
        {"patch_size": 4, "embed_dim": 8, "depths": (1, 1), "num_heads": (1, 2), "window_size": 4},
        ("norm", "head.fc", "channels_last"),
    ),
}


@pytest.mark.parametrize("family", list(TIMM_TRANSFORMERS))
def test_timm_transformer_families_get_their_token_layers_and_grad_cam_runs(family: str) -> None:
    """Class, distillation and register tokens are dropped (`num_prefix_tokens`); Swin's
    channels-last stage feeds average pooling + one linear layer, so CAM applies there."""
    import timm

    from explain.models.architectures import architecture_cam_layers

    name, sizes, expected = TIMM_TRANSFORMERS[family]
    torch.manual_seed(0)
    overrides = {"img_size": 32, "patch_size": 8, "embed_dim": 16, "num_heads": 2} | sizes
    model = timm.create_model(name, pretrained=False, num_classes=CLASSES, **overrides)
    cam = architecture_cam_layers(model)
    assert cam == expected
    bundle = explain.make_bundle(
        family,
        model,
        list("abc"),
        input_size=32,
        cam_layer=cam.layer,
        linear_head=cam.head,
        cam_reshape=cam.reshape,
        device="cpu",
    )
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method in ("gradcam", "cam") if cam.head else ("gradcam",):
        maps = attribute(bundle, x, method)
        assert maps.shape == (1, 32, 32) and np.isfinite(maps).all() and maps.std() > 0
