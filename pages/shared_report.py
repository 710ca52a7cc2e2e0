"""A saved report, read-only, for whoever has its link (`/?report=<id>`).

app.py shows this page alone, without the navigation, when the query parameter is
present. The id is validated by the store before it touches the filesystem."""

from __future__ import annotations

import streamlit as st

from pages.ui import session
from reports import ReportNotFoundError, ReportStore

session.start_page()
report_id = st.query_params.get("report", "")
try:
    saved = ReportStore().info(report_id)
    html = ReportStore().load_html(report_id)
except ReportNotFoundError:
    st.title("Report not found")
    st.error("This report link is not valid, or the report has been deleted.")
    st.stop()

st.caption(f"Shared report · saved {saved.created} · read-only")
st.download_button("Download HTML", html, file_name=f"report-{report_id}.html", mime="text/html",
                   key="shared_download", icon=":material/download:")
st.iframe(html, height="content")
