"""The Reports page and share links, driven through Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import reports
from reports.store import STORE_ENV, ReportStore
from tests.report_samples import HOSTILE, curves

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def store(tmp_path, monkeypatch) -> ReportStore:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    return ReportStore()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "error", "warning", "code", "title")
             for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def test_gallery_result_goes_into_a_saved_shareable_report(store):
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["samples"] = ["chelsea"]
    at.session_state["methods"] = ["gradcam"]
    at.run()
    assert not at.exception, at.exception
    at.button(key="add_to_report:gallery").click().run()
    assert not at.exception, at.exception
    assert [s.key for s in at.session_state["report_sections"]] == ["gallery"]

    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Reports"
    assert at.multiselect(key="report_order").value == [0]
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
    viewer = AppTest.from_file(APP, default_timeout=60)
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
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["report"] = bad_id
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Report not found"
    assert "not valid" in at.error[0].value


def test_sections_are_chosen_and_ordered_and_can_be_cleared(store):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["report_sections"] = [curves("first"), reports.Section("t", "Second", (reports.Table(("a",), ((1,),)),))]
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="report_order").value == [0, 1]
    at.multiselect(key="report_order").set_value([1, 0]).run()
    report = at.session_state["report_render"]["report"]
    assert [s.title for s in report.sections] == ["Second", curves().title]
    at.multiselect(key="report_order").set_value([]).run()
    assert "Choose at least one section" in texts(at)
    at.button(key="report_clear").click().run()
    assert at.session_state["report_sections"] == []
    assert "The report is empty" in texts(at)


def test_the_saved_list_shows_other_sessions_reports_only_when_the_operator_allows(store, monkeypatch):
    foreign = store.save(reports.Report.assemble("someone else's", [curves("x")]), "<p>x</p>")
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert not at.get("selectbox") and "No saved reports to show" in texts(at)
    monkeypatch.setenv("EXPLAIN_REPORTS_LIST", "all")
    at.run()
    assert at.selectbox(key="report_to_delete").value == foreign.id


def test_metric_pages_add_their_curves_to_the_report(store):
    """Deletion/insertion and SIC/AIC pages (tiny CNN) -> Add to report -> one report with both sections."""
    from tests.synthetic import PatchCNN, bundle_of

    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["custom_bundle"] = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    at.session_state["samples"] = ["chelsea", "coffee"]
    at.session_state["methods"] = ["gradcam", "saliency"]
    for page, key in (("pages/deletion_insertion.py", "deletion_insertion"), ("pages/pic.py", "sic_aic")):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        at.button(key=f"add_to_report:{key}").click().run()
        assert not at.exception, at.exception
    sections = at.session_state["report_sections"]
    assert [s.key for s in sections] == ["deletion_insertion", "sic_aic"]
    di = at.session_state["deletion_insertion_result"]
    table = sections[0].blocks[-1]
    assert table.rows[0][1] == pytest.approx(di.deletion["gradcam"].mean_auc)
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="report_order").value == [0, 1]
    html = at.session_state["report_render"]["html"]
    assert html.count('class="plotly-graph-div"') == 4 and "Deletion AUC (mean)" in html


def test_shap_summary_page_adds_its_plots_to_the_report(store):
    from tests.synthetic import PatchCNN, bundle_of

    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["custom_bundle"] = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    at.session_state["samples"] = ["chelsea", "coffee"]
    at.session_state["shap_method"] = "shap_gradient"
    at.session_state["param:shap_gradient:n_samples"] = 4
    at.session_state["shap_grid"] = 4
    at.switch_page("pages/shap_summary.py").run()
    assert not at.exception, at.exception
    at.button(key="add_to_report:shap_summary").click().run()
    assert not at.exception, at.exception
    [section] = at.session_state["report_sections"]
    summary = at.session_state["shap_summary_result"]["summary"]
    assert section.key == "shap_summary" and [b.kind for b in section.blocks] == ["figure"] * 4 + ["table"]
    assert section.blocks[-1].rows[0][1] == summary.ranked(1)[0][0]
    assert [m.key for m in section.context.methods] == ["shap_gradient"]
    assert dict(section.context.methods[0].params)["n_samples"] == 4
