"""The Model & data page through AppTest: uploads round-trip into attributions, every bad
input gets its message and leaves the session usable, uploads obey the operator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from streamlit.testing.v1 import AppTest

from .apptest import click, run_until_idle, shown_result
from .test_byom_backend import SmallCNN, png_bytes, torch_bytes, torchscript_bytes, zip_bytes
from .test_data import huge_png_header
from tests.patience import generous

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/model_data.py"


def model_page(secrets: dict | None = None, user: dict | None = None) -> AppTest:
    """A fresh session on the Model & data page, after a first run on the gallery (one
    photo, Saliency: cached across tests by the process-wide attribution cache)."""
    at = AppTest.from_file(APP, default_timeout=generous(30))
    if secrets:
        at.secrets.update(secrets)
    if user is not None:
        at.user = user
    at.session_state["samples"] = ["coffee"]
    at.session_state["methods"] = ["saliency"]
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def uploader(at: AppTest, label: str):
    matches = [f for f in at.get("file_uploader") if f.label.startswith(label)]
    assert matches, [f.label for f in at.get("file_uploader")]
    return matches[0]


def upload_model(at: AppTest, filename: str, data: bytes, kind: str = "state_dict", classes: int | None = None,
                 architecture: str = "resnet18", class_names: bytes | None = None) -> AppTest:
    at.radio(key="byom_source").set_value("Upload a model").run()
    if kind != "state_dict":
        at.radio(key="byom_kind").set_value(kind).run()
    if data is not None:
        uploader(at, "Model file").set_value((filename, data, "application/octet-stream"))
    if kind == "state_dict":
        at.selectbox(key="byom_arch").set_value(architecture)
        if classes is not None:
            at.number_input(key="byom_num_classes").set_value(classes)
    elif classes is not None:
        at.number_input(key="byom_ts_classes").set_value(classes)
    if class_names is not None:
        uploader(at, "Class names").set_value(("classes.txt", class_names, "text/plain"))
    at.button(key="byom_load").click().run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.error)


def gallery_maps(at: AppTest) -> dict:
    """Run the gallery on the session's model and selection; its maps by method."""
    at.switch_page("pages/gallery.py").run()
    run_until_idle(click(at, "Run"))
    return shown_result(at, "gallery").maps


@pytest.fixture(scope="module")
def resnet18_bytes() -> bytes:
    torch.manual_seed(0)
    return torch_bytes(torchvision.models.resnet18(num_classes=10).state_dict())


@pytest.mark.slow
def test_resnet18_state_dict_upload_round_trip(resnet18_bytes):
    at = upload_model(model_page(), "resnet18.pth", resnet18_bytes, classes=10)
    assert not at.error and "Loaded resnet18 (resnet18.pth): 10 classes" in at.success[0].value
    bundle = at.session_state["custom_bundle"]
    assert bundle.num_classes == 10 and bundle.cam_layer == "layer4"
    at.session_state["methods"] = ["gradcam", "saliency"]
    maps = gallery_maps(at)
    assert {k: v.shape for k, v in maps.items()} == {"gradcam": (1, 224, 224), "saliency": (1, 224, 224)}
    assert any("resnet18 (resnet18.pth)" in m.value for m in at.sidebar.markdown)


def test_torchscript_upload_round_trip_with_preprocessing():
    at = model_page(secrets={"explain": {"allow_torchscript": True}})
    at = upload_model(
        at, "cnn.pt", torchscript_bytes(SmallCNN(classes=3)), kind="torchscript", class_names=b"red\ngreen\nblue\n"
    )
    assert not at.error, errors(at)
    assert at.session_state["custom_bundle"].class_names == ["red", "green", "blue"]
    base_id = suffix = at.session_state["custom_bundle"].model_id
    at.number_input(key=f"byom_input_size:{suffix}").set_value(32)
    at.number_input(key=f"byom_resize:{suffix}").set_value(36)
    at.text_input(key=f"byom_mean:{suffix}").set_value("0.5")
    [b for b in at.get("button") if getattr(b, "label", "") == "Apply"][0].click().run()
    assert not at.error, errors(at)
    bundle = at.session_state["custom_bundle"]
    assert (bundle.input_size, bundle.resize_size, bundle.mean) == (
        32,
        36,
        (0.5, 0.5, 0.5),
    ) and bundle.model_id != base_id
    maps = gallery_maps(at)
    assert maps["saliency"].shape == (1, 32, 32)


@pytest.mark.slow
def test_dataset_zip_feeds_the_sidebar_picker_with_labels():
    at = model_page()
    archive = zip_bytes({"digits/3/a.png": png_bytes((255, 0, 0)), "digits/7/b.png": png_bytes((0, 0, 255))})
    uploader(at, "Zip archive").set_value(("digits.zip", archive, "application/zip"))
    at.button(key="byom_load_zip").click().run()
    assert not at.error, errors(at)
    dataset = at.session_state["dataset"]
    assert dataset.labels == ("3", "7") and dataset.targets == [0, 1]
    picker = at.sidebar.multiselect(key=f"dataset_picks:{dataset.id}")
    assert picker.value == ["digits/3/a.png", "digits/7/b.png"]
    maps = gallery_maps(at)
    assert maps["saliency"].shape == (3, 224, 224)
    assert list(shown_result(at, "gallery").images.names) == ["coffee", "digits/3/a.png", "digits/7/b.png"]


def _bad_model_cases(resnet18_bytes: bytes, tmp_path: Path) -> dict:
    class WritesAFile:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned.txt"), "w"))

    return {
        "not a model": (dict(filename="photo.pt", data=png_bytes()), "not a PyTorch state dict"),
        "wrong classes": (dict(filename="r.pt", data=resnet18_bytes, classes=1000), r"fc.weight \(file \(10, 512\)"),
        "wrong architecture": (
            dict(filename="r.pt", data=resnet18_bytes, classes=10, architecture="resnet34"),
            "missing: layer1.2.conv1.weight",
        ),
        "class names differ": (
            dict(filename="r.pt", data=resnet18_bytes, classes=10, class_names=b"a\nb\n"),
            r"differs from the class-names file \(2 names\)",
        ),
        "malicious pickle": (
            dict(filename="evil.pt", data=torch_bytes({"w": torch.zeros(1), "x": WritesAFile()})),
            "refused",
        ),
        "no file": (dict(filename="", data=None), "Choose a model file first"),
    }


@pytest.mark.parametrize(
    "case", ["not a model", "wrong classes", "wrong architecture", "class names differ", "malicious pickle", "no file"]
)
def test_bad_model_uploads_get_messages_and_keep_the_loaded_model(case, resnet18_bytes, tmp_path):
    at = model_page(secrets={"explain": {"allow_torchscript": True}})
    at = upload_model(at, "good.pt", torchscript_bytes(SmallCNN(classes=3)), kind="torchscript")
    good = at.session_state["custom_bundle"]
    kwargs, message = _bad_model_cases(resnet18_bytes, tmp_path)[case]
    at.radio(key="byom_kind").set_value("state_dict").run()
    at = upload_model(at, **kwargs)
    assert re.search(message, errors(at)), errors(at)
    assert at.session_state["custom_bundle"] is good
    assert not (tmp_path / "pwned.txt").exists()
    assert gallery_maps(at)["saliency"].shape == (1, 224, 224)  # the session still works


@pytest.mark.parametrize("entries, message", [
    ({"notes/readme.txt": b"hello"}, "no images found"),
    ({"../x.png": png_bytes()}, "path traversal"),
    ({"a/zeros.png": b"\0" * (20 * 2**20)}, "zip bomb"),
    ({"a/bomb.png": huge_png_header(20000, 20000)}, "too large"),
    (None, "Choose a zip file first"),
])
def test_bad_zips_get_messages_and_keep_the_dataset(entries, message):
    at = model_page()
    uploader(at, "Zip archive").set_value(("good.zip", zip_bytes({"c/a.png": png_bytes()}), "application/zip"))
    at.button(key="byom_load_zip").click().run()
    good = at.session_state["dataset"]
    uploader(at, "Zip archive").set_value(("bad.zip", zip_bytes(entries), "application/zip") if entries else None)
    at.button(key="byom_load_zip").click().run()
    assert not at.exception, at.exception
    assert message in errors(at), errors(at)
    assert at.session_state["dataset"] is good


def test_single_image_bomb_and_empty_selection():
    at = model_page()
    at.radio(key="byom_data_source").set_value("Single images").run()
    at.button(key="byom_load_images").click().run()
    assert "Choose at least one image" in errors(at)
    uploader(at, "Images").set_value([("bomb.png", huge_png_header(20000, 20000), "image/png")])
    at.button(key="byom_load_images").click().run()
    assert "too large" in errors(at) and at.session_state.get("dataset") is None


def test_server_folder_only_inside_the_allowed_root(tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "cat" / "a.png").write_bytes(png_bytes())
    at = model_page(secrets={"explain": {"data_roots": [str(tmp_path / "data")]}})
    at.radio(key="byom_data_source").set_value("Folder on the server").run()
    at.text_input(key="byom_folder").set_value(str(tmp_path)).run()
    at.button(key="byom_load_folder").click().run()
    assert "outside the folders" in errors(at)
    at.text_input(key="byom_folder").set_value(str(tmp_path / "data")).run()
    at.button(key="byom_load_folder").click().run()
    assert not at.error and at.session_state["dataset"].labels == ("cat",)


def test_password_locks_uploads_until_given():
    at = model_page(secrets={"explain": {"upload_password": "s3cret"}})
    at.radio(key="byom_source").set_value("Upload a model").run()
    labels = [f.label for f in at.get("file_uploader")]
    assert labels == [], labels  # neither the page's nor the sidebar's uploaders
    assert any("locked" in c.value for c in at.sidebar.caption)
    at.text_input(key="upload_password_attempt").set_value("guess").run()
    assert "Wrong password" in errors(at)
    at.text_input(key="upload_password_attempt").set_value("s3cret").run()
    assert not at.error
    assert {"Model file", "Zip archive", "Upload images (PNG, JPEG, WebP)"} <= {
        f.label for f in at.get("file_uploader")
    }


def test_login_mode_refuses_accounts_not_on_the_list():
    secrets = {"explain": {"auth": "login", "allowed_emails": ["ann@lab.org"]}, "auth": {"redirect_uri": "http://x"}}
    at = model_page(secrets=secrets, user={"is_logged_in": True, "email": "bob@lab.org"})
    assert "bob@lab.org may not upload" in errors(at)
    assert not [f for f in at.get("file_uploader")]
    at = model_page(secrets=secrets, user={"is_logged_in": True, "email": "ann@lab.org"})
    assert uploader(at, "Zip archive")


def test_torchscript_is_refused_unless_allowed():
    at = model_page()
    at.radio(key="byom_source").set_value("Upload a model").run()
    assert at.radio(key="byom_kind").options == ["State dict + torchvision architecture", "ONNX"]
    assert any("TorchScript uploads are disabled" in c.value for c in at.caption)


def test_password_guessing_is_cut_off_after_a_few_tries():
    at = model_page(secrets={"explain": {"upload_password": "s3cret"}})
    at.text_input(key="upload_password_attempt").set_value("guess-0").run()
    at.radio(key="byom_source").set_value("torchvision zoo").run()  # a rerun is not a guess
    for i in range(1, 5):
        at.text_input(key="upload_password_attempt").set_value(f"guess-{i}").run()
    assert "Too many wrong passwords" not in errors(at)
    at.text_input(key="upload_password_attempt").set_value("another").run()
    assert "Too many wrong passwords" in errors(at)
    assert not [f for f in at.get("file_uploader")]
