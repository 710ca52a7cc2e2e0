"""The Reports page and share links, driven through Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import reports
from reports.store import STORE_ENV, ReportStore
from pages.ui.report_builder import ReportDraft
from tests.report_samples import HOSTILE, curves
from tests.synthetic import PatchCNN, bundle_of, labelled_folder

from .apptest import click, run_until_idle, shown_result
from tests.patience import generous

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def store(tmp_path, monkeypatch) -> ReportStore:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    return ReportStore()


def draft_of(at: AppTest) -> ReportDraft:
    return at.session_state["report_draft"]


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "error", "warning", "code", "title")
             for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def test_gallery_result_goes_into_a_saved_shareable_report(store):
    at = AppTest.from_file(APP, default_timeout=generous(30))
    at.session_state["samples"] = ["chelsea"]
    at.session_state["methods"] = ["gradcam"]
    run_until_idle(at)
    at.button(key="add_to_report:gallery").click().run()
    assert not at.exception, at.exception
    assert [s.section.key for s in draft_of(at).sections] == ["gallery"]

    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Reports"
    assert at.checkbox(key=f"include:{draft_of(at).sections[0].id}").value
    at.text_input(key="report_title").set_value(f"Cats {HOSTILE}").run()
    rendered = at.session_state["report_render"]["html"]
    assert "Cats &lt;script&gt;" in rendered and "Egyptian cat" in rendered
    assert at.get("download_button"), "a Download HTML button"

    at.button(key="report_save").click().run()
    assert not at.exception, at.exception
    saved = store.list()
    assert [s.title for s in saved] == [f"Cats {HOSTILE}"]
    assert store.load_html(saved[0].id) == rendered
    assert f"/?report={saved[0].id}" in texts(at)

    # The share link opens the saved report alone, read-only, without the navigation.
    viewer = AppTest.from_file(APP, default_timeout=generous(6))
    viewer.query_params["report"] = saved[0].id
    viewer.run()
    assert not viewer.exception, viewer.exception
    assert "Shared report" in texts(viewer) and "read-only" in texts(viewer)
    assert not viewer.get("multiselect") and not viewer.sidebar.get("multiselect")  # no gallery widgets

    # Delete from the saved list (it lists this session's reports).
    assert at.selectbox(key="report_to_delete").options == [f"{saved[0].created} · Cats {HOSTILE}"]
    at.selectbox(key="report_to_delete").set_value(saved[0].id)
    at.button(key="report_delete").click().run()
    assert not at.exception and store.list() == []


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "x" * 22, ""])
def test_a_bad_or_unknown_share_link_says_so(store, bad_id):
    at = AppTest.from_file(APP, default_timeout=generous(6))
    at.query_params["report"] = bad_id
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Report not found"
    assert "not valid" in at.error[0].value


def test_sections_are_chosen_and_ordered_and_can_be_cleared(store):
    at = AppTest.from_file(APP, default_timeout=generous(6))
    report = ReportDraft()
    for section in (curves("first"), reports.Section("t", "Second", (reports.Table(("a",), ((1,),)),))):
        report.add(section)
    at.session_state["report_draft"] = report
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    first, second = report.sections
    at.button(key=f"down:{first.id}").click().run()
    assert [s.title for s in at.session_state["report_render"]["report"].sections] == ["Second", curves().title]
    at.checkbox(key=f"include:{second.id}").uncheck().run()
    assert [s.title for s in at.session_state["report_render"]["report"].sections] == [curves().title]
    at.checkbox(key=f"include:{first.id}").uncheck().run()
    assert "Include at least one section" in texts(at)
    at.button(key="report_clear").click().run()
    assert draft_of(at).sections == []
    assert "The report is empty" in texts(at)


@pytest.mark.slow
def test_the_report_being_built_survives_page_switches_and_adds_from_every_page(store, tmp_path):
    """Why #3: title, author, description and chosen sections were wiped by "Add to report"
    on the ROAR page, and the download held 2 of 5 sections without a word."""
    from explain.data.datasets import dataset_from_folder

    at = AppTest.from_file(APP, default_timeout=generous(30))
    at.session_state["custom_bundle"] = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    at.session_state["samples"] = ["chelsea", "coffee"]
    at.session_state["methods"] = ["gradcam", "saliency"]
    run_until_idle(at)
    at.button(key="add_to_report:gallery").click().run()
    for page, key in (("pages/deletion_insertion.py", "deletion_insertion"), ("pages/pic.py", "pic")):
        at.switch_page(page).run()
        run_until_idle(click(at, "Run"))
        at.button(key=f"add_to_report:{key}").click().run()
        assert not at.exception, at.exception
    at.switch_page("pages/reports.py").run()
    at.text_input(key="report_title").set_value("Kept title").run()
    at.text_input(key="report_author").set_value("Ann").run()
    at.text_area(key="report_description").set_value("Kept description").run()
    sections = draft_of(at).sections
    at.checkbox(key=f"include:{sections[0].id}").uncheck().run()
    at.button(key=f"down:{sections[1].id}").click().run()
    # A tiny ROAR run, added from inside the page's live fragment.
    folder = labelled_folder(tmp_path / "images")
    at.session_state["dataset"] = dataset_from_folder(folder, [folder])
    at.switch_page("pages/roar.py").run()
    at.radio(key="roar_source").set_value("The labelled dataset from the Model & data page").run()
    at.number_input(key="roar_image_size").set_value(16)
    at.number_input(key="roar_epochs").set_value(1)
    at.multiselect(key="roar_methods").set_value(["saliency"])
    at.text_input(key="roar_fractions").input("50").run()
    run_until_idle(click(at, "Run (retrains the network)"))
    at.button(key="add_to_report:roar").click().run()
    assert not at.exception, at.exception
    at.switch_page("pages/gallery.py").run()
    at.switch_page("pages/reports.py").run()
    report = draft_of(at)
    assert (report.title, report.author, report.description) == ("Kept title", "Ann", "Kept description")
    assert at.text_input(key="report_title").value == "Kept title"
    assert [s.section.key for s in report.sections] == ["gallery", "sic_aic", "deletion_insertion", "roar"]
    assert [s.included for s in report.sections] == [False, True, True, True]
    rendered = at.session_state["report_render"]["report"]
    assert [s.key for s in rendered.sections] == ["sic_aic", "deletion_insertion", "roar"] and rendered.title == "Kept title"
    assert "3 of 4 section(s)" in texts(at)


def test_the_saved_list_shows_other_sessions_reports_only_when_the_operator_allows(store, monkeypatch):
    foreign = store.save(reports.Report.assemble("someone else's", [curves("x")]), "<p>x</p>")
    at = AppTest.from_file(APP, default_timeout=generous(6))
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert not at.get("selectbox") and "No saved reports to show" in texts(at)
    monkeypatch.setenv("EXPLAIN_REPORTS_LIST", "all")
    at.run()
    assert at.selectbox(key="report_to_delete").value == foreign.id


def test_shap_summary_page_adds_its_plots_to_the_report(store):
    at = AppTest.from_file(APP, default_timeout=generous(30))
    at.session_state["custom_bundle"] = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    at.session_state["samples"] = ["chelsea", "coffee"]
    at.session_state["shap_method"] = "shap_gradient"
    at.session_state["param:shap_gradient:n_samples"] = 4
    at.session_state["shap_grid"] = 4
    at.switch_page("pages/shap_summary.py").run()
    run_until_idle(click(at, "Run"))
    at.button(key="add_to_report:shap_summary").click().run()
    assert not at.exception, at.exception
    [item] = draft_of(at).sections
    section = item.section
    summary = shown_result(at, "shap_summary").summary(4)
    assert section.key == "shap_summary" and [b.kind for b in section.blocks] == ["figure"] * 4 + ["table"]
    assert section.blocks[-1].rows[0][1] == summary.ranked(1)[0][0]
    assert [m.key for m in section.context.methods] == ["shap_gradient"]
    assert dict(section.context.methods[0].params)["n_samples"] == 4
