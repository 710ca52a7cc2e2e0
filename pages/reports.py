"""Reports: assemble the sections added from the other pages into one report (choose,
reorder, title it), preview it, download it as one self-contained HTML file, or save
it and share a link. The report being built lives in the session's `ReportDraft`, so
nothing here is lost by visiting other pages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import streamlit as st

from pages.ui import report_builder
from pages.ui.session import start_page
from reports import Report, ReportNotFoundError, ReportStore, render_report, share_link
from reports.pdf import html_to_pdf, pdf_missing
from reports.store import list_all_reports

start_page()
st.title("Reports")
store = ReportStore()
draft = report_builder.draft()


def app_base_url() -> str:
    """scheme://host[:port] of the app as the browser sees it, for full share links."""
    url = getattr(st.context, "url", None) or ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def file_name(title: str, suffix: str = ".html") -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60]
    return f"{slug or 'report'}{suffix}"


def pdf_of(signature: tuple, html: str) -> bytes:
    """The report printed to PDF (on the click only), kept for this version of the draft."""
    cached = st.session_state.get("report_pdf")
    if cached is None or cached[0] != signature:
        cached = (signature, html_to_pdf(html))
        st.session_state["report_pdf"] = cached
    return cached[1]


def text_field(widget, label: str, attribute: str, **kwargs) -> None:
    """A text widget bound to a field of the draft: the draft is the source of truth."""
    key = f"report_{attribute}"
    if key not in st.session_state:
        st.session_state[key] = getattr(draft, attribute)
    value = widget(label, key=key, **kwargs)
    if value != getattr(draft, attribute):
        setattr(draft, attribute, value)


build_tab, saved_tab = st.tabs(["Build", "Saved reports"])

with build_tab:
    if not draft.sections:
        st.info("The report is empty. Use **Add to report** on a page (the gallery, the metric pages...) "
                "to collect results here.")
    else:
        text_field(st.text_input, "Title", "title", max_chars=200)
        text_field(st.text_input, "Author", "author", max_chars=200)
        text_field(st.text_area, "Description", "description", max_chars=5000)
        st.markdown("**Sections, in report order**")
        for position, item in enumerate(draft.sections):
            include, title, up, down, remove = st.columns([1, 8, 1, 1, 1], vertical_alignment="center")
            included = include.checkbox(
                "Include", value=item.included, key=f"include:{item.id}", label_visibility="collapsed"
            )
            draft.set_included(item.id, included)
            title.markdown(f"{position + 1}. {item.section.title}")
            if up.button("↑", key=f"up:{item.id}", disabled=position == 0, help="Move up"):
                draft.move(item.id, -1)
                st.rerun()
            if down.button("↓", key=f"down:{item.id}", disabled=position == len(draft.sections) - 1, help="Move down"):
                draft.move(item.id, 1)
                st.rerun()
            if remove.button("✕", key=f"remove:{item.id}", help="Remove from the report"):
                draft.remove(item.id)
                st.rerun()
        if st.button("Remove all sections", key="report_clear"):
            draft.clear()
            st.rerun()
        chosen = draft.chosen
        if not chosen:
            st.warning("Include at least one section.")
        else:
            signature = (draft.version, draft.title, draft.author, draft.description)
            cached = st.session_state.get("report_render")
            if cached is None or cached["signature"] != signature:
                with st.spinner("Rendering the report..."):
                    report = Report.assemble(draft.title, chosen, author=draft.author, description=draft.description)
                    cached = {"signature": signature, "report": report, "html": render_report(report)}
                st.session_state["report_render"] = cached
            report, html = cached["report"], cached["html"]
            size_mb = len(html.encode("utf-8")) / 2**20
            left, middle, right = st.columns(3)
            left.download_button(
                "Download HTML", html, file_name=file_name(report.title), mime="text/html",
                key="report_download", icon=":material/download:", width="stretch",
            )
            missing = pdf_missing()
            middle.download_button(
                "Download PDF", lambda: pdf_of(signature, html), file_name=file_name(report.title, ".pdf"),
                mime="application/pdf", key="report_download_pdf", icon=":material/picture_as_pdf:", width="stretch",
                disabled=missing is not None, help=missing or "Printed from the same HTML by headless Chromium (A4).",
            )
            if right.button(
                "Save & share", key="report_save", icon=":material/share:", width="stretch", type="primary"
            ):
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
            st.caption(
                f"{len(chosen)} of {len(draft.sections)} section(s) · {size_mb:.1f} MB · opens offline in any browser"
            )
            if st.toggle(
                "Preview", value=True, key="report_preview", help="Turn off to keep the page light for large reports"
            ):
                st.iframe(html, height=800)

with saved_tab:
    mine = st.session_state.setdefault("report_saved_ids", [])
    if list_all_reports():
        saved_reports = store.list()
        st.caption("Every report saved on this server (this instance lists them all: `EXPLAIN_REPORTS_LIST=all`).")
    else:
        saved_reports = [r for r in store.list() if r.id in mine]
        st.caption(
            "The reports saved in this browser session. Others stay private to whoever holds their link; "
            "`python -m reports list` on the server lists them all (or set `EXPLAIN_REPORTS_LIST=all` on a private "
            "instance)."
        )
    if store.skipped:
        st.warning(f"{store.skipped} saved report(s) with damaged metadata were left out; `python -m reports list` on "
                   "the server names them.")
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
