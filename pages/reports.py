"""Reports: assemble the sections added from the other pages into one report, preview
it, download it as one self-contained HTML file, or save it and share a link."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import streamlit as st

from explain.plots.overlay import DisplaySettings
from pages.ui import model, report_builder, session
from reports import Report, ReportNotFoundError, ReportStore, render_report, share_link
from reports.store import list_all_reports
from reports.sections import gallery_section

session.leave_legacy_pages_mode()
st.title("Reports")
store = ReportStore()
sections = report_builder.report_sections()


def app_base_url() -> str:
    """scheme://host[:port] of the app as the browser sees it, for full share links."""
    url = getattr(st.context, "url", None) or ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def file_name(title: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60]
    return f"{slug or 'report'}.html"


build_tab, saved_tab = st.tabs(["Build", "Saved reports"])

with build_tab:
    gallery_result = st.session_state.get("gallery_result")
    if gallery_result is not None:
        prepared = gallery_result["prepared"]
        report_builder.add_to_report(
            lambda: gallery_section(
                gallery_result.get("bundle") or model.current_bundle(), prepared.names, prepared.display, gallery_result["maps"],
                gallery_result["methods"], gallery_result["target"], prepared.top5,
                gallery_result.get("display") or DisplaySettings(),
            ),
            key="reports_page_gallery",
            label="Add the gallery's current result",
        )
    if not sections:
        st.info("The report is empty. Use **Add to report** on a page (the gallery, the metric pages...) "
                "to collect results here.")
    else:
        title = st.text_input("Title", "Attribution report", key="report_title", max_chars=200)
        author = st.text_input("Author", "", key="report_author", max_chars=200)
        description = st.text_area("Description", "", key="report_description", max_chars=5000)
        positions = list(range(len(sections)))
        # Keep the chosen order across visits; sections added since the last visit join at the end.
        seen = st.session_state.get("report_order_count", 0)
        order = [i for i in st.session_state.get("report_order", []) if i < len(sections)]
        st.session_state["report_order"] = order + list(range(seen, len(sections)))
        st.session_state["report_order_count"] = len(sections)
        chosen = st.multiselect(
            "Sections, in report order (remove and add again to move one to the end)",
            positions, key="report_order", format_func=lambda i: f"{i + 1}. {sections[i].title}",
        )
        if st.button("Remove all sections", key="report_clear"):
            sections.clear()
            for key in ("report_render", "report_order", "report_order_count"):
                st.session_state.pop(key, None)
            st.rerun()
        if not chosen:
            st.warning("Choose at least one section.")
        else:
            signature = (tuple(id(sections[i]) for i in chosen), title, author, description)
            cached = st.session_state.get("report_render")
            if cached is None or cached["signature"] != signature:
                with st.spinner("Rendering the report..."):
                    report = Report.assemble(title, [sections[i] for i in chosen], author=author, description=description)
                    cached = {"signature": signature, "report": report, "html": render_report(report)}
                st.session_state["report_render"] = cached
            report, html = cached["report"], cached["html"]
            size_mb = len(html.encode("utf-8")) / 2**20
            left, right = st.columns(2)
            left.download_button(
                "Download HTML", html, file_name=file_name(report.title), mime="text/html",
                key="report_download", icon=":material/download:", width="stretch",
            )
            if right.button("Save & share", key="report_save", icon=":material/share:", width="stretch", type="primary"):
                try:
                    saved = store.save(report, html)
                except OSError as exc:
                    st.error(f"Could not save the report: {exc}")
                else:
                    st.session_state["report_last_saved"] = saved.id
                    st.session_state.setdefault("report_saved_ids", []).append(saved.id)
            last = st.session_state.get("report_last_saved")
            if last:
                st.success("Saved. Anyone with this link can read the report (read-only):")
                link = share_link(last, app_base_url())
                st.code(link, language=None)
                st.link_button("Open the shared view", link, icon=":material/open_in_new:")
            st.caption(f"{len(chosen)} section(s) · {size_mb:.1f} MB · opens offline in any browser")
            if st.toggle("Preview", value=True, key="report_preview", help="Turn off to keep the page light for large reports"):
                st.iframe(html, height=800)

with saved_tab:
    mine = st.session_state.setdefault("report_saved_ids", [])
    if list_all_reports():
        saved_reports = store.list()
        st.caption("Every report saved on this server (this instance lists them all: `EXPLAIN_REPORTS_LIST=all`).")
    else:
        saved_reports = [r for r in store.list() if r.id in mine]
        st.caption("The reports saved in this browser session. Others stay private to whoever holds their link; "
                   "`python -m reports list` on the server lists them all (or set `EXPLAIN_REPORTS_LIST=all` on a private instance).")
    if not saved_reports:
        st.info("No saved reports to show. **Save & share** stores one here.")
    else:
        base = app_base_url()
        st.dataframe(
            [{"title": r.title, "author": r.author, "created": r.created, "MB": round(r.size_bytes / 2**20, 2),
              "link": share_link(r.id, base)} for r in saved_reports],
            column_config={"link": st.column_config.LinkColumn("Share link")},
            hide_index=True,
        )
        labels = {r.id: f"{r.created} · {r.title}" for r in saved_reports}
        doomed = st.selectbox("Report to delete", list(labels), format_func=labels.get, key="report_to_delete")
        if st.button("Delete", key="report_delete", icon=":material/delete:"):
            try:
                store.delete(doomed)
            except ReportNotFoundError as exc:
                st.error(str(exc))
            else:
                if st.session_state.get("report_last_saved") == doomed:
                    st.session_state.pop("report_last_saved")
                st.rerun()
