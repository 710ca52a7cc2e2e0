"""AppTest of the ROAR page with a tiny labelled dataset (as loaded on the Model & data page)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from explain.metrics import roar
from explain.data.datasets import dataset_from_folder

APP = Path(__file__).resolve().parent.parent / "app.py"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """Two classes of 16 x 16 PNGs told apart by a bright or dark top-left patch."""
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for label, name in enumerate(["dark", "bright"]):
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = (120 + 20 * rng.standard_normal((16, 16, 3))).clip(0, 255)
            pixels[:4, :4] = 250 if label else 5
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    (root / "dark" / "broken.png").write_bytes(b"not an image")
    return root


OWN = "The labelled dataset from the Model & data page"


def roar_page(dataset=None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if dataset is not None:
        at.session_state["dataset"] = dataset
    at.switch_page("pages/roar.py")
    return at.run()


def tiny_settings(at: AppTest) -> AppTest:
    at.radio(key="roar_source").set_value(OWN).run()
    at.number_input(key="roar_image_size").set_value(16)
    at.number_input(key="roar_epochs").set_value(1)
    at.multiselect(key="roar_methods").set_value(["saliency"])
    at.text_input(key="roar_fractions").input("50")
    return at.run()


def test_page_runs_a_tiny_job_and_shows_curves_and_auc(folder):
    dataset = dataset_from_folder(folder, [folder])
    at = tiny_settings(roar_page(dataset))
    assert not at.exception
    assert "1 file(s) skipped" in at.expander[0].label
    start = at.button(key="roar_start")
    assert start.label == "Start (2 retrainings)"  # saliency and the random baseline at 50 %
    start.click().run()
    job = roar.get_roar_job(at.session_state["roar_job_key"])
    assert job is not None and job.wait(120), "the tiny job did not finish"
    assert job.status.state == "done"
    at.run()
    assert not at.exception and not at.error
    assert "roar_start" not in [b.key for b in at.button]  # complete: nothing left to start
    table = at.dataframe[0].value
    assert list(table["method"]) == ["Saliency", "Random (baseline)"]
    assert table["ROAR AUC"].notna().all()
    assert len(at.get("plotly_chart")) == 1
    # Reopening the page shows the saved result at once, without a new job.
    again = tiny_settings(roar_page(dataset))
    assert list(again.dataframe[0].value["method"]) == ["Saliency", "Random (baseline)"]
    assert len(again.get("plotly_chart")) == 1 and "roar_start" not in [b.key for b in again.button]


def test_page_explains_what_is_missing_or_wrong(folder, tmp_path):
    at = roar_page()
    at.radio(key="roar_source").set_value(OWN).run()
    assert not at.exception
    assert "Model & data page" in at.info[0].value
    one_class = dataset_from_folder(folder / "dark", [folder])  # no class sub-folders: unlabelled
    at = roar_page(one_class)
    at.radio(key="roar_source").set_value(OWN).run()
    assert "needs a class" in at.error[0].value
    at = roar_page(dataset_from_folder(folder, [folder]))
    at.radio(key="roar_source").set_value(OWN).run()
    at.text_input(key="roar_fractions").input("10, 120").run()
    assert "outside (0, 100)" in at.error[0].value


def test_default_page_offers_the_default_run_on_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    at = roar_page()
    assert not at.exception
    assert at.multiselect(key="roar_methods").value == list(roar.DEFAULT_METHODS)
    assert at.button(key="roar_start").label == "Start (25 retrainings)"  # (4 methods + random) x 5 fractions
