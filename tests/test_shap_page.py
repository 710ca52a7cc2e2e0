"""The SHAP summary page, driven through Streamlit's AppTest on the default model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from .apptest import click, run_until_idle, shown_result
from tests.patience import generous

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def shap_page(samples=("chelsea", "coffee"), n_samples=4) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=generous(60))
    at.session_state["samples"] = list(samples)
    at.session_state["shap_method"] = "shap_gradient"
    at.session_state["param:shap_gradient:n_samples"] = n_samples
    at.session_state["shap_grid"] = 4
    at.run()
    at.switch_page("pages/shap_summary.py").run()
    return run_until_idle(click(at, "Run"))


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


@pytest.mark.slow
def test_shap_page_shows_image_plots_beeswarm_and_cell_heatmap():
    at = shap_page()
    assert not at.exception, at.exception
    assert at.title[0].value == "SHAP summary"
    figs = figures(at)
    # One SHAP image plot per image, then the beeswarm and the cell heatmap.
    assert len(figs) == 2 + 2
    image_plot = figs[0]
    heatmaps = [t for t in image_plot["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 2 and heatmaps[0]["zmin"] == -heatmaps[0]["zmax"]
    bees = figs[2]["data"][0]
    assert len(bees["x"]) == 2 * 15  # 15 of the 16 cells shown by default, one dot per image
    hover = " ".join(bees["text"])
    assert "chelsea" in hover and "coffee" in hover and "espresso" in hover
    summary = shown_result(at, "shap_summary").summary(4)
    assert summary.values.shape == (2, 16) and summary.targets[1] == 967
    assert any("Most important cells" in m.value for m in at.markdown)


@pytest.mark.slow
def test_chosen_class_is_the_explained_one_and_a_revisit_reads_the_store(monkeypatch):
    from explain.analyses import maps as maps_module

    at = shap_page(samples=("coffee",))
    at.radio(key="class_mode").set_value("class").run()
    at.selectbox(key="class_choice").set_value(281).run()
    run_until_idle(click(at, "Run"))
    assert shown_result(at, "shap_summary").summary(4).targets == [281]
    calls = []
    monkeypatch.setattr(maps_module, "attribute", lambda *a, **k: calls.append(a))
    at.switch_page("pages/gallery.py").run()
    at.switch_page("pages/shap_summary.py").run()
    assert not at.exception and not calls  # two top classes + the chosen one, read back from the store
    assert len(figures(at)) == 1 + 2


@pytest.mark.slow
def test_whole_dataset_joins_the_summary():
    import explain
    from explain.data.datasets import ImageDataset

    names = ("coffee", "rocket", "flower")
    dataset = ImageDataset("mini", tuple(explain.NamedImage(n, explain.load_sample(n)) for n in names), ("a", "b", "b"))
    at = AppTest.from_file(APP, default_timeout=generous(60))
    at.session_state["samples"] = ["chelsea"]
    at.session_state["dataset"] = dataset
    at.session_state["dataset_picks:" + dataset.id] = []
    at.session_state["shap_method"] = "shap_gradient"
    at.session_state["param:shap_gradient:n_samples"] = 4
    at.session_state["shap_top_k"] = 1
    at.run()
    at.switch_page("pages/shap_summary.py").run()
    run_until_idle(click(at, "Run"))
    assert shown_result(at, "shap_summary").summary(7).image_names == ["chelsea"]
    at.checkbox(key="shap_whole_dataset").check()
    run_until_idle(click(at, "Run"))
    summary = shown_result(at, "shap_summary").summary(7)
    assert summary.image_names == ["chelsea", *names]
    assert summary.values.shape == (4, 49)
    assert len(figures(at)) == 4 + 2  # a per-image plot for each of the 4 images, beeswarm, heatmap
