"""AppTest of the ROAR page with a tiny labelled dataset (as loaded on the Model & data page)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explain.metrics import roar
from explain.data.datasets import dataset_from_folder
from tests.synthetic import labelled_folder

from .apptest import click, run_until_idle, shown_result
from tests.patience import generous

APP = Path(__file__).resolve().parent.parent / "app.py"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """Two classes of 16 x 16 PNGs told apart by a bright or dark top-left patch, one broken file."""
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))
    return labelled_folder(tmp_path / "images")


OWN = "The labelled dataset from the Model & data page"
RUN = "Run (retrains the network)"


def roar_page(dataset=None, secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=generous(6))
    if secrets:
        at.secrets.update(secrets)
    if dataset is not None:
        at.session_state["dataset"] = dataset
    at.switch_page("pages/roar.py")
    return at.run()


def tiny_settings(at: AppTest) -> AppTest:
    """The own dataset at 16 px, then (in the form, sent with the next click on Run) one
    epoch, Saliency, 50 %."""
    at.radio(key="roar_source").set_value(OWN).run()
    at.number_input(key="roar_image_size").set_value(16).run()
    at.number_input(key="roar_epochs").set_value(1)
    at.multiselect(key="roar_methods").set_value(["saliency"])
    at.text_input(key="roar_fractions").input("50")
    return at


def test_page_runs_a_tiny_job_and_shows_curves_and_auc(folder):
    dataset = dataset_from_folder(folder, [folder])
    at = tiny_settings(roar_page(dataset))
    assert not at.exception
    assert "1 file(s) skipped" in at.expander[0].label
    run_until_idle(click(at, RUN))
    assert not at.exception and not at.error
    result = shown_result(at, "roar")
    assert result.complete and result.done == result.total == 2  # saliency and the random baseline at 50 %
    table = at.dataframe[0].value
    assert list(table.index) == ["Saliency", "Random (baseline)"]
    assert table["ROAR AUC"].notna().all()
    assert len(at.get("plotly_chart")) == 1
    # A new session with the same settings shows the stored result at once, without a new job.
    again = roar_page(dataset)
    for name, value in (("roar_source", OWN), ("roar_image_size", 16), ("roar_epochs", 1), ("roar_methods", ["saliency"]),
                        ("roar_fractions", "50")):
        again.session_state[name] = value
    again.run()
    assert list(again.dataframe[0].value.index) == ["Saliency", "Random (baseline)"]
    assert len(again.get("plotly_chart")) == 1 and not again.info


def test_roar_runs_need_the_upload_access(folder):
    at = roar_page(dataset_from_folder(folder, [folder]), secrets={"explain": {"auth": "password", "upload_password": "pw"}})
    button = [b for b in at.get("button") if getattr(b, "label", "") == RUN][0]
    assert button.disabled and "locked like uploads" in " ".join(c.value for c in at.caption)


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
    at.text_input(key="roar_fractions").input("10, 120")
    click(at, RUN).run()
    assert "outside (0, 100)" in at.error[0].value


def test_default_page_offers_the_default_run_on_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    at = roar_page()
    assert not at.exception
    assert at.multiselect(key="roar_methods").value == list(roar.DEFAULT_METHODS)
    assert "25 of 25 retrainings to go" in at.info[0].value  # (4 methods + random) x 5 fractions
