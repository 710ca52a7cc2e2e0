"""Bring your own model and data: safe loading, class names, datasets, operator config."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save as save_safetensors
from torch import nn

import explain
from explain import models as cm
from explain.config import OperatorConfig, may_upload, password_matches, read_operator_config
from explain.data.datasets import (
    DatasetError,
    DatasetLimits,
    dataset_from_folder,
    dataset_from_uploads,
    dataset_from_zip,
)

from .test_data import huge_png_header


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def png_bytes(color=(255, 0, 0), size=(16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def torchscript_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(model.eval()), buffer)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- models

@pytest.fixture(scope="module")
def resnet18_10():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@pytest.mark.parametrize("fmt", ["pt", "safetensors", "wrapped", "dataparallel"])
def test_resnet18_state_dict_round_trip_gives_the_same_logits(resnet18_10, fmt):
    state = resnet18_10.state_dict()
    data = {
        "pt": lambda: torch_bytes(state),
        "safetensors": lambda: save_safetensors({k: v.contiguous() for k, v in state.items()}),
        "wrapped": lambda: torch_bytes({"epoch": 3, "state_dict": state}),
        "dataparallel": lambda: torch_bytes({f"module.{k}": v for k, v in state.items()}),
    }[fmt]()
    filename = "weights.safetensors" if fmt == "safetensors" else "weights.pth"
    bundle = cm.load_uploaded_model(
        cm.UploadedModel(filename, data, "state_dict", "resnet18", 10),
        allow_torchscript=False,
        max_bytes=2**30,
        device="cpu",
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = resnet18_10(x)
    assert torch.allclose(bundle.logits(x), expected, atol=1e-5)
    assert (bundle.cam_layer, bundle.linear_head, bundle.num_classes) == ("layer4", "fc", 10)
    assert bundle.model_id.startswith("upload-")


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned.txt"

    class WritesAFile:
        def __reduce__(self):
            return (open, (str(target), "w"))

    data = torch_bytes({"weight": torch.zeros(2), "payload": WritesAFile()})
    with pytest.raises(cm.CustomModelError, match="refused.*io.open"):
        cm.read_state_dict(data, "evil.pt")
    assert not target.exists()


def test_whole_pickled_model_is_refused_with_advice():
    with pytest.raises(cm.CustomModelError, match=r"refused.*Linear.*state_dict"):
        cm.read_state_dict(torch_bytes(nn.Linear(2, 2)), "model.pt")


@pytest.mark.parametrize("data, filename, message", [
    (png_bytes(), "photo.pt", "not a PyTorch state dict"),
    (b"", "empty.pt", "empty"),
    (b"not safetensors at all", "w.safetensors", "not a readable safetensors"),
    (torch_bytes([1, 2, 3]), "list.pt", "expected a mapping"),
    (torch_bytes({"a": torch.zeros(1), "b": 3}), "mixed.pt", "not tensors: b"),
])
def test_files_that_are_not_state_dicts_get_clear_messages(data, filename, message):
    with pytest.raises(cm.CustomModelError, match=message):
        cm.read_state_dict(data, filename)


def test_state_dict_that_does_not_fit_names_the_keys(resnet18_10):
    data = torch_bytes(resnet18_10.state_dict())
    with pytest.raises(
        cm.CustomModelError,
        match=r"fc.weight \(file \(10, 512\), architecture \(1000, 512\)\).*set the number of classes to that",
    ) as info:
        cm.load_uploaded_model(
            cm.UploadedModel("r.pt", data, "state_dict", "resnet18", 1000), allow_torchscript=False, max_bytes=2**30
        )
    assert "10 outputs" in str(info.value)
    with pytest.raises(cm.CustomModelError, match=r"does not fit resnet34.*missing: layer1.2.conv1.weight"):
        cm.load_uploaded_model(
            cm.UploadedModel("r.pt", data, "state_dict", "resnet34", 10), allow_torchscript=False, max_bytes=2**30
        )


def test_class_count_must_match_the_class_names(resnet18_10):
    upload = cm.UploadedModel("r.pt", torch_bytes(resnet18_10.state_dict()), "state_dict", "resnet18", 10, tuple("abc"))
    with pytest.raises(
        cm.CustomModelError, match=r"number of classes \(10\) differs from the class-names file \(3 names\)"
    ):
        cm.load_uploaded_model(upload, allow_torchscript=False, max_bytes=2**30)


def test_size_limit_is_enforced(resnet18_10):
    upload = cm.UploadedModel("r.pt", torch_bytes(resnet18_10.state_dict()), "state_dict", "resnet18", 10)
    with pytest.raises(cm.CustomModelError, match="accepts up to 1 MB"):
        cm.load_uploaded_model(upload, allow_torchscript=False, max_bytes=2**20)


def test_torchscript_needs_the_operators_permission_and_agrees_with_the_eager_model():
    torch.manual_seed(1)
    eager = SmallCNN(classes=3).eval()
    upload = cm.UploadedModel("cnn.pt", torchscript_bytes(eager), "torchscript")
    with pytest.raises(cm.CustomModelError, match="TorchScript uploads are disabled"):
        cm.load_uploaded_model(upload, allow_torchscript=False, max_bytes=2**30)
    scripted = cm.load_uploaded_model(upload, allow_torchscript=True, max_bytes=2**30, device="cpu")
    assert scripted.num_classes == 3 and scripted.cam_layer is None
    assert cm.scripted_conv_layer_names(scripted.model) == ["scripted.conv1", "scripted.conv2"]
    assert cm.cam_layer_options(scripted) == []
    reference = explain.make_bundle("eager", eager, ["a", "b", "c"], input_size=32, device="cpu")
    x = torch.randn(2, 3, 32, 32)
    for method in ("saliency", "integrated_gradients"):
        got = explain.attribute(scripted, x, method, target=1)
        assert got.shape == (2, 32, 32)
        np.testing.assert_allclose(got, explain.attribute(reference, x, method, target=1), rtol=1e-4, atol=1e-6)


def test_a_state_dict_offered_as_torchscript_and_vice_versa_is_explained():
    with pytest.raises(cm.CustomModelError, match="not a TorchScript file"):
        cm.load_torchscript(torch_bytes(SmallCNN().state_dict()), "w.pt", allowed=True)
    with pytest.raises(cm.CustomModelError, match="this is a TorchScript file"):
        cm.read_state_dict(torchscript_bytes(SmallCNN()), "cnn.pt")


def test_torchscript_class_count_is_checked_against_the_output():
    upload = cm.UploadedModel("cnn.pt", torchscript_bytes(SmallCNN(classes=3)), "torchscript", None, 5)
    with pytest.raises(cm.CustomModelError, match="gives 3 outputs per image, but 5 classes"):
        cm.load_uploaded_model(upload, allow_torchscript=True, max_bytes=2**30)


@pytest.mark.parametrize(
    "data, filename, expected",
    [
        (b"cat\n\ndog\r\n  bird  \n", "classes.txt", ["cat", "dog", "bird"]),
        (json.dumps(["cat", "dog"]).encode(), "classes.json", ["cat", "dog"]),
        (json.dumps({"1": "dog", "0": "cat"}).encode(), "c.json", ["cat", "dog"]),
        (
            json.dumps({"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]}).encode(),
            "imagenet_class_index.json",
            ["tench", "goldfish"],
        ),
    ],
)
def test_class_names_are_parsed(data, filename, expected):
    assert cm.parse_class_names(data, filename) == expected


@pytest.mark.parametrize("data, message", [
    (b"[1, 2", "not valid JSON"),
    (b"cat\ncat\n", "repeat"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"  \n", "empty"),
    (json.dumps({"0": "a", "2": "b"}).encode(), "without gaps"),
])
def test_bad_class_names_get_clear_messages(data, message):
    with pytest.raises(cm.CustomModelError, match=message):
        cm.parse_class_names(data, "classes.txt")


def test_settings_share_the_model_and_lock_but_not_the_cache_key(resnet18_10):
    base = explain.make_bundle(
        "r18", resnet18_10, [str(i) for i in range(10)], cam_layer="layer4", linear_head="fc", device="cpu"
    )
    same = cm.with_settings(base, cm.preprocessing_of(base), "layer4")
    assert same is base
    other = cm.with_settings(base, cm.Preprocessing(64, 72, (0.5,) * 3, (0.5,) * 3), "layer3.1.conv2")
    assert other.model is base.model and other.lock is base.lock
    assert other.model_id != base.model_id and other.linear_head is None
    assert (other.input_size, other.resize_size, other.cam_layer) == (64, 72, "layer3.1.conv2")
    x = other.preprocess_batch([explain.load_sample("coffee")])
    assert x.shape == (1, 3, 64, 64)
    assert explain.attribute(other, x, "gradcam").shape == (1, 64, 64)
    assert not explain.get_method("cam").is_available(other)
    assert cm.cam_layer_options(base)[:2] == ["layer4", "layer4.1.conv2"]
    with pytest.raises(cm.CustomModelError, match="no layer"):
        cm.with_settings(base, cm.preprocessing_of(base), "nope")


def test_preprocessing_defaults_follow_the_architecture():
    assert cm.preprocessing_for("inception_v3").input_size == 299
    assert cm.preprocessing_for("resnet18") == cm.Preprocessing(224, 256, cm.IMAGENET_MEAN, cm.IMAGENET_STD)
    assert cm.parse_floats("0.5", "Mean") == (0.5, 0.5, 0.5)
    with pytest.raises(cm.CustomModelError, match="Resize size"):
        cm.Preprocessing(224, 100)


# ----------------------------------------------------------------------------- datasets

def test_zip_of_class_folders_gives_labels():
    data = zip_bytes({
        "pets/cat/1.png": png_bytes((255, 0, 0)),
        "pets/cat/2.png": png_bytes((200, 0, 0)),
        "pets/dog/1.jpg": png_bytes((0, 0, 255)),
        "pets/dog/notes.txt": b"ignored",
        "__MACOSX/pets/cat/._1.png": b"junk",
    })
    dataset = dataset_from_zip(data, "pets.zip")
    assert [im.name for im in dataset.images] == ["pets/cat/1.png", "pets/cat/2.png", "pets/dog/1.jpg"]
    assert (
        dataset.labels == ("cat", "cat", "dog") and dataset.classes == ["cat", "dog"] and dataset.targets == [0, 0, 1]
    )
    assert dataset.is_labelled and dataset.label_of("pets/dog/1.jpg") == "dog"
    assert dataset.model_targets(["Dog", "bird", "cat"]) == [2, 2, 0]
    assert dataset.images[0].image.getpixel((0, 0)) == (255, 0, 0)


def test_image_bomb_and_damaged_file_inside_a_zip_are_skipped_with_reasons():
    data = zip_bytes({"a/ok.png": png_bytes(), "a/bomb.png": huge_png_header(20000, 20000), "b/bad.png": b"nope"})
    dataset = dataset_from_zip(data, "d.zip")
    assert [im.name for im in dataset.images] == ["a/ok.png"]
    assert len(dataset.skipped) == 2 and "too large" in " ".join(dataset.skipped)


@pytest.mark.parametrize("entries, message", [
    ({"../x.png": png_bytes()}, "path traversal"),
    ({"ok/../../x.png": png_bytes()}, "path traversal"),
    ({"/etc/x.png": png_bytes()}, "absolute path"),
    ({"notes/readme.txt": b"hello"}, "no images found"),
    ({"a/huge.png": b"\0" * (50 * 2**20)}, "inflates .*-fold"),
])
def test_bad_zips_are_refused(entries, message):
    with pytest.raises(DatasetError, match=message):
        dataset_from_zip(zip_bytes(entries), "bad.zip")


def test_zip_limits_and_non_zips():
    data = zip_bytes({f"c/{i}.png": png_bytes() for i in range(5)})
    with pytest.raises(DatasetError, match="at most 3"):
        dataset_from_zip(data, "d.zip", DatasetLimits(max_images=3))
    with pytest.raises(DatasetError, match="inflate to"):
        dataset_from_zip(data, "d.zip", DatasetLimits(max_total_bytes=100))
    with pytest.raises(DatasetError, match="not a zip"):
        dataset_from_zip(png_bytes(), "photo.zip")


def test_server_folder_must_lie_inside_the_allowed_roots(tmp_path):
    root = tmp_path / "data"
    (root / "mnist" / "3").mkdir(parents=True)
    (root / "mnist" / "7").mkdir(parents=True)
    (root / "mnist" / "3" / "a.png").write_bytes(png_bytes())
    (root / "mnist" / "7" / "b.png").write_bytes(png_bytes((0, 255, 0)))
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes())
    (root / "mnist" / "7" / "link.png").symlink_to(secret)
    dataset = dataset_from_folder("mnist", [root])
    assert dataset.labels == ("3", "7") and [im.name for im in dataset.images] == ["3/a.png", "7/b.png"]
    assert "links outside" in dataset.skipped[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "c.png").write_bytes(png_bytes())
    (root / "mnist" / "escape").symlink_to(outside, target_is_directory=True)
    assert [im.name for im in dataset_from_folder(root / "mnist", [root]).images] == ["3/a.png", "7/b.png"]
    with pytest.raises(DatasetError, match="more than 1 images"):
        dataset_from_folder(root, [root], DatasetLimits(max_images=1))
    for path, message in [
        (tmp_path, "outside the folders"),
        (root / "mnist" / ".." / "..", "outside"),
        (root / "nope", "not a folder"),
    ]:
        with pytest.raises(DatasetError, match=message):
            dataset_from_folder(path, [root])
    with pytest.raises(DatasetError, match="disabled"):
        dataset_from_folder(root, [])


def test_single_uploads_are_unlabelled_and_bombs_are_refused():
    dataset = dataset_from_uploads([("a.png", png_bytes()), ("b.png", png_bytes((1, 2, 3)))])
    assert dataset.labels == (None, None) and not dataset.is_labelled
    with pytest.raises(DatasetError, match="none of the 1 image files.*too large"):
        dataset_from_uploads([("bomb.png", huge_png_header(20000, 20000))])


# ----------------------------------------------------------------------------- operator config

def test_nothing_configured_means_open_uploads_and_no_torchscript():
    config = read_operator_config({}, {})
    assert config == OperatorConfig()
    assert may_upload(config, unlocked_by_password=False, logged_in=False, email=None)


def test_password_from_secrets_and_environment_overrides():
    secrets = {"explain": {"upload_password": "from-file", "data_roots": ["/srv/data"], "allow_torchscript": True}}
    config = read_operator_config(secrets, {"EXPLAIN_UPLOAD_PASSWORD": "from-env", "EXPLAIN_MAX_MODEL_MB": "50"})
    assert config.auth == "password" and config.allow_torchscript and config.max_model_mb == 50
    assert config.data_roots == (Path("/srv/data").resolve(),)
    assert password_matches(config, "from-env") and not password_matches(config, "from-file")
    assert not may_upload(config, unlocked_by_password=False, logged_in=True, email="a@b.c")
    assert may_upload(config, unlocked_by_password=True, logged_in=False, email=None)


def test_login_mode_checks_the_allowed_emails():
    config = read_operator_config({"explain": {"auth": "login", "allowed_emails": ["Ann@Lab.org"]}, "auth": {}}, {})
    assert may_upload(config, unlocked_by_password=False, logged_in=True, email="ann@lab.org")
    assert not may_upload(config, unlocked_by_password=False, logged_in=True, email="bob@lab.org")
    assert not may_upload(config, unlocked_by_password=True, logged_in=False, email=None)


@pytest.mark.parametrize("secrets, environ, message", [
    ({"explain": {"auth": "password"}}, {}, "needs upload_password"),
    ({"explain": {"auth": "login"}}, {}, r"needs an \[auth\] section"),
    ({}, {"EXPLAIN_AUTH": "maybe"}, "auth must be one of"),
    ({"explain": {"uplod_password": "x"}}, {}, "unknown setting"),
    ({}, {"EXPLAIN_MAX_DATASET_MB": "lots"}, "whole number"),
])
def test_misconfiguration_fails_closed(secrets, environ, message):
    config = read_operator_config(secrets, environ)
    assert config.error and __import__("re").search(message, config.error)
    assert not may_upload(config, unlocked_by_password=True, logged_in=True, email="a@b.c")


def test_the_documented_secrets_example_configures_a_password_instance():
    import tomllib

    example = Path(__file__).resolve().parents[1] / ".streamlit" / "secrets.toml.example"
    config = read_operator_config(tomllib.loads(example.read_text()), {})
    assert config.error is None and config.auth == "password" and not config.allow_torchscript
    assert password_matches(config, "change-me")
    streamlit_config = tomllib.loads((example.parent / "config.toml").read_text())
    assert streamlit_config["server"]["maxUploadSize"] == config.max_model_mb
