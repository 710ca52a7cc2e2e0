"""AppTest of the metric pages (Deletion & insertion, SIC / AIC), on a small synthetic model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.synthetic import PatchCNN, bundle_of

from .apptest import click, run_until_idle, shown_result
from tests.patience import generous

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=generous(12))
    at.session_state["custom_bundle"] = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    at.session_state["samples"] = ["chelsea", "coffee"]
    at.session_state["methods"] = ["gradcam", "saliency"]
    return at


def run_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return run_until_idle(click(at, "Run"))


def test_deletion_insertion_page_plots_curves_and_reruns_on_new_settings(app):
    run_page(app, "pages/deletion_insertion.py")
    result = shown_result(app, "deletion_insertion")
    assert list(result.curves["deletion"]) == ["gradcam", "saliency"] and result.params["substrate"] == "zero"
    assert result.curves["deletion"]["gradcam"].curves.shape == (2, result.params["steps"] + 1)
    assert len(app.get("plotly_chart")) == 2 and len(app.dataframe) == 1
    app.selectbox(key="param:deletion_insertion:substrate").set_value("blur")
    app.number_input(key="param:deletion_insertion:steps").set_value(8)
    run_until_idle(click(app, "Run"))
    result = shown_result(app, "deletion_insertion")
    assert result.params["substrate"] == "blur" and result.curves["deletion"]["saliency"].curves.shape == (2, 9)


def test_pic_page_plots_curves_table_and_strip(app):
    run_page(app, "pages/pic.py")
    result = shown_result(app, "pic")
    assert list(result.curves["sic"]) == ["xrai", "gradcam", "saliency"]  # XRAI proposed on its paper's page
    for curves in (*result.curves["sic"].values(), *result.curves["aic"].values()):
        assert len(curves.kept) + len(curves.skipped) == 2
        assert not curves.kept or np.isfinite(curves.score)
    skipped_any = any(c.skipped for c in (*result.curves["sic"].values(), *result.curves["aic"].values()))
    assert bool(app.warning) == skipped_any
    assert len(app.get("plotly_chart")) == 2 and len(app.dataframe) == 1
    app.selectbox(key="pic:detail_method").set_value("saliency")
    app.button(key="pic:detail_show").click().run()
    assert not app.exception, app.exception
    strip = app.get("image")[-1]
    assert len(strip.proto.imgs) == 13 + 2  # fully blurred, each threshold, original
    assert strip.proto.imgs[-1].caption.startswith("100.0% revealed")


def test_pages_report_no_selection_without_failing(app):
    app.session_state["pic:methods"] = []
    app.switch_page("pages/pic.py").run()
    assert not app.exception and "Choose at least one method, then press Run." in [i.value for i in app.info]


@pytest.mark.slow
def test_pic_page_on_the_default_model_keeps_a_confident_photo():
    at = AppTest.from_file(APP, default_timeout=generous(30))
    at.session_state["samples"] = ["coffee"]
    at.session_state["methods"] = ["gradcam"]
    run_page(at, "pages/pic.py")
    result = shown_result(at, "pic")
    sic = result.curves["sic"]["gradcam"]
    assert sic.kept == (0,) and 0.0 < sic.score <= 1.0
    assert result.images.targets[0] == 967  # espresso
