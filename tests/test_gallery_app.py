"""The gallery page, driven through Streamlit's AppTest."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import explain

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CHEAP_METHODS = ["gradcam", "saliency"]


def gallery(samples=("chelsea", "coffee"), methods=CHEAP_METHODS) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["samples"] = list(samples)
    at.session_state["methods"] = list(methods)
    return at


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def images_on_page(at: AppTest) -> list:
    return list(at.get("image"))


def test_gallery_shows_images_by_methods_with_top5():
    at = gallery().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Attribution gallery"
    assert len(images_on_page(at)) == 2 * (1 + len(CHEAP_METHODS))
    text = " ".join(m.value for m in at.markdown)
    assert "**Grad-CAM**" in text and "**Saliency**" in text
    assert "1. espresso" in text and "Egyptian cat" in text
    assert any("device" in c.value.lower() or "Device" in c.value for c in at.sidebar.caption)


@pytest.mark.slow
def test_gallery_default_settings_render():
    at = AppTest.from_file(APP, default_timeout=600).run()
    assert not at.exception, at.exception
    assert len(images_on_page(at)) == 3 * 4


def test_chosen_class_and_display_settings_apply():
    at = gallery(samples=("chelsea",)).run()
    at.radio(key="class_mode").set_value("Choose a class").run()
    at.selectbox(key="class_choice").set_value("967: espresso").run()
    assert not at.exception
    captions = [c for image in images_on_page(at) for c in image.captions]
    assert captions == ["chelsea", "class 967: espresso", "class 967: espresso"]
    at.selectbox(key="sign").set_value("signed")
    at.selectbox(key="colormap").set_value("bwr").run()
    assert not at.exception and len(images_on_page(at)) == 3


def test_rerun_comes_from_the_cache():
    from pages.ui.model import shared_cache

    at = gallery(samples=("rocket",)).run()
    hits = shared_cache().hits
    at.run()
    assert not at.exception
    assert shared_cache().hits >= hits + len(CHEAP_METHODS)


def test_bad_uploads_give_messages_and_good_ones_are_converted():
    at = gallery(samples=("chelsea",)).run()
    coffee = explain.load_sample("coffee")
    truncated = io.BytesIO()
    coffee.save(truncated, "JPEG")
    files = [
        ("notes.png", b"this is a text file" * 20, "image/png"),
        ("half.jpg", truncated.getvalue()[:5000], "image/jpeg"),
        ("grey.png", png_bytes(coffee.convert("L")), "image/png"),
        ("alpha.png", png_bytes(coffee.convert("RGBA")), "image/png"),
    ]
    at.sidebar.file_uploader[0].set_value(files).run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "notes.png" in errors and "not an image" in errors
    assert "half.jpg" in errors and "truncated" in errors
    # chelsea + the two converted uploads, each with an image column and two method columns.
    assert len(images_on_page(at)) == 3 * 3


def test_no_image_selected_shows_a_hint():
    at = gallery(samples=()).run()
    assert not at.exception
    assert any("Select a sample photo" in i.value for i in at.info)
