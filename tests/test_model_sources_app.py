"""Model & data through AppTest with the new sources: an HF folder inside the operator's
allowed folders and an uploaded timm weights file load; the card shows source, digest,
preprocessing and class count; a folder outside the allowed ones and a hub id without
downloads are refused with one message."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.test_byom_app import errors, model_page, uploader
from tests.tiny_models import save_tiny_models


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_tiny_models(tmp_path_factory.mktemp("served"))


def card(at) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_hf_folder_inside_the_allowed_folders_loads_and_the_card_says_so(made: dict[str, Path]) -> None:
    root = made["hf_vit"].parent
    at = model_page(secrets={"explain": {"data_roots": [str(root)]}})
    at.radio(key="byom_source").set_value("Hugging Face").run()
    at.text_input(key="byom_hf_ref").set_value("hf_vit")
    at.button(key="byom_load_hf").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert "Source: hf" in card(at) and "crop 32" in card(at) and "3 classes" in card(at)
    at.text_input(key="byom_hf_ref").set_value("/etc").run()
    at.button(key="byom_load_hf").click().run()
    assert "outside the folders this instance may read" in errors(at)
    at.text_input(key="byom_hf_ref").set_value("google/vit-base-patch16-224").run()
    at.button(key="byom_load_hf").click().run()
    assert "Hub ids need downloads, which are off on this instance." in errors(at)


def test_timm_weights_upload_loads_with_the_files_digest(made: dict[str, Path]) -> None:
    at = model_page()
    at.radio(key="byom_source").set_value("timm").run()
    at.selectbox(key="byom_timm_name").set_value("test_convnext")
    data = made["timm_convnext"].read_bytes()
    uploader(at, "Weights").set_value(("convnext.safetensors", data, "application/octet-stream"))
    at.button(key="byom_load_timm").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert "Source: timm" in card(at) and hashlib.sha256(data).hexdigest()[:16] in card(at)
    assert "crop 160" in card(at) and "3 classes" in card(at)
