"""The gallery page, driven through Streamlit's AppTest: first paint, jobs, kept settings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import explain
from explain.analyses import maps as maps_module

from .apptest import click, run_until_idle, shown_result, wait_for_jobs
from tests.patience import generous

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CHEAP_METHODS = ["gradcam", "saliency"]


def gallery(samples=("chelsea", "coffee"), methods=CHEAP_METHODS) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=generous(30))
    at.session_state["samples"] = list(samples)
    at.session_state["methods"] = list(methods)
    return at


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def images_on_page(at: AppTest) -> list:
    return list(at.get("image"))


class CountingAttribute:
    """Counts the attribution calls analyses make (and still computes them)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.original = maps_module.attribute

    def __call__(self, bundle, images, method, *args, **kwargs):
        self.calls.append(method)
        return self.original(bundle, images, method, *args, **kwargs)


@pytest.fixture
def counted(monkeypatch) -> CountingAttribute:
    counter = CountingAttribute()
    monkeypatch.setattr(maps_module, "attribute", counter)
    return counter


def test_first_visit_paints_images_and_top5_then_maps_arrive():
    at = gallery().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Attribution gallery"
    text = " ".join(m.value for m in at.markdown)
    assert "1. espresso" in text and "Egyptian cat" in text  # before any map is computed
    wait_for_jobs()
    at.run()
    assert len(images_on_page(at)) == 2 * (1 + len(CHEAP_METHODS))
    text = " ".join(m.value for m in at.markdown)
    assert "**Grad-CAM**" in text and "**Saliency**" in text
    assert any("device" in c.value.lower() for c in at.sidebar.caption)
    result = shown_result(at, "gallery")
    assert result.complete and set(result.maps) == set(CHEAP_METHODS)


@pytest.mark.slow
def test_gallery_default_settings_render():
    at = run_until_idle(AppTest.from_file(APP, default_timeout=generous(60)))
    assert len(images_on_page(at)) == 3 * 4


def test_choosing_a_class_computes_nothing_until_run(counted):
    """Why #1: "Choose a class" used to start explaining class 0 at once."""
    at = run_until_idle(gallery(samples=("chelsea",)))
    counted.calls.clear()
    at.radio(key="class_mode").set_value("class").run()
    at.selectbox(key="class_choice").set_value(967).run()
    wait_for_jobs()
    assert counted.calls == []  # widgets changed, no attribution ran
    run_until_idle(click(at, "Run"))
    assert sorted(counted.calls) == sorted(CHEAP_METHODS)
    captions = [c for image in images_on_page(at) for c in image.captions]
    assert captions == ["chelsea", "class 967: espresso", "class 967: espresso"]


def test_display_settings_survive_a_page_switch_and_recompute_nothing(counted):
    """Why #4: display settings went back to their defaults after a page switch."""
    at = run_until_idle(gallery(samples=("chelsea",)))
    counted.calls.clear()
    at.selectbox(key="sign").set_value("signed")
    at.selectbox(key="colormap").set_value("bwr")
    at.slider(key="opacity").set_value(0.3).run()
    assert not at.exception and len(images_on_page(at)) == 3 and counted.calls == []
    at.switch_page("pages/reports.py").run()
    at.switch_page("pages/gallery.py").run()
    assert (at.selectbox(key="sign").value, at.selectbox(key="colormap").value, at.slider(key="opacity").value) == ("signed", "bwr", 0.3)


def test_a_revisit_reads_the_finished_result_without_computing(counted):
    run_until_idle(gallery(samples=("rocket",)))
    first = len(counted.calls)
    assert first == len(CHEAP_METHODS)
    fresh = gallery(samples=("rocket",))  # another browser session, same settings
    run_until_idle(fresh)
    assert len(counted.calls) == first and len(images_on_page(fresh)) == 3


def test_bad_uploads_give_messages_and_good_ones_are_converted():
    at = run_until_idle(gallery(samples=("chelsea",)))
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
    assert len(images_on_page(at)) == 3  # the new selection's photos at once, no maps before Run
    run_until_idle(click(at, "Run"))
    # chelsea + the two converted uploads, each with an image column and two method columns.
    assert len(images_on_page(at)) == 3 * 3


def test_no_image_selected_shows_a_hint():
    at = gallery(samples=()).run()
    assert not at.exception
    assert any("Select a sample photo" in i.value for i in at.info)


def test_many_methods_wrap_into_rows_of_readable_width():
    methods = ["gradcam", "saliency", "input_x_gradient", "guided_backprop", "cam", "deeplift"]
    at = run_until_idle(gallery(samples=("coffee",), methods=methods))
    rows = column_rows(at.main)
    image_rows = [row for row in rows if any(list(c.get("image")) for c in row)]
    assert len(image_rows) == 2 and all(len(row) == 5 for row in image_rows)  # 7 cells: 5 + 2, not 7 narrow ones
    assert len(images_on_page(at)) == 1 + len(methods)


def column_rows(node) -> list[list]:
    """Every horizontal block's columns, depth first."""
    children = list((getattr(node, "children", None) or {}).values())
    found = [children] if children and all(getattr(c, "type", "") == "column" for c in children) else []
    for child in children:
        found += column_rows(child)
    return found


def test_sidebar_picks_survive_page_switches_and_every_page_uses_them():
    """Why #4: dataset picks went back to their defaults after a page switch; the metric
    pages then ran on 8 images instead of the 4 chosen, and the report's header
    disagreed with its own gallery section."""
    from explain.data.datasets import ImageDataset
    from tests.synthetic import PatchCNN, bundle_of

    rng = np.random.default_rng(0)
    images = tuple(explain.NamedImage(f"img{i}.png", Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)))
                   for i in range(8))
    dataset = ImageDataset("eight", images, ("a", "b") * 4)
    at = AppTest.from_file(APP, default_timeout=generous(30))
    at.session_state["custom_bundle"] = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    at.session_state["dataset"] = dataset
    at.session_state["samples"] = []
    at.session_state["methods"] = ["gradcam", "saliency"]
    at.run()
    picks = at.sidebar.multiselect(key=f"dataset_picks:{dataset.id}")
    assert len(picks.value) == 6  # the default
    chosen = ["img1.png", "img3.png", "img5.png", "img7.png"]
    picks.set_value(chosen).run()
    at.radio(key="class_mode").set_value("class").run()
    run_until_idle(click(at, "Run"))
    at.button(key="add_to_report:gallery").click().run()
    for page in ("pages/model_data.py", "pages/reports.py", "pages/deletion_insertion.py"):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        if page != "pages/reports.py":  # the Reports page has no image picker; the picks must outlive it
            assert at.sidebar.multiselect(key=f"dataset_picks:{dataset.id}").value == chosen, page
            assert at.sidebar.radio(key="class_mode").value == "class", page
    run_until_idle(click(at, "Run"))
    result = shown_result(at, "deletion_insertion")
    assert list(result.images.names) == chosen and result.curves["deletion"]["gradcam"].num_units == 4
    at.button(key="add_to_report:deletion_insertion").click().run()
    at.switch_page("pages/reports.py").run()
    report = at.session_state["report_render"]["report"]
    assert report.header.images == tuple(chosen)
    assert [s.context.images for s in report.sections] == [tuple(chosen)] * 2
