"""Entry point: the navigation over the dashboard's pages.

A share link (`/?report=<id>`) shows that saved report alone, read-only, with no
navigation; everything else is the dashboard. Every registered metric gets a page:
its own file where it has one, else the generic metric page.
"""

import streamlit as st

from explain.metrics import list_metrics
from pages.ui.metric_page import render as render_metric_page
from pages.ui.session import before_page_run

METRIC_PAGE_FILES = {"deletion_insertion": "pages/deletion_insertion.py", "sic_aic": "pages/pic.py"}
METRIC_ICONS = {"deletion_insertion": ":material/trending_down:", "sic_aic": ":material/trending_up:"}


def metric_pages() -> list:
    pages = []
    for metric in list_metrics():
        icon = METRIC_ICONS.get(metric.key, ":material/query_stats:")
        if metric.key in METRIC_PAGE_FILES:
            pages.append(st.Page(METRIC_PAGE_FILES[metric.key], title=metric.label, icon=icon))
        else:
            def page(key: str = metric.key) -> None:
                render_metric_page(key, page=key)
            page.__name__ = f"metric_{metric.key}"
            pages.append(st.Page(page, title=metric.label, icon=icon, url_path=metric.key))
    return pages


st.set_page_config(page_title="Explain image classifiers", page_icon="🔍", layout="wide")
if "report" in st.query_params:
    navigation = st.navigation(
        [st.Page("pages/shared_report.py", title="Shared report", icon=":material/description:")], position="hidden"
    )
else:
    navigation = st.navigation([
        st.Page("pages/model_data.py", title="Model & data", icon=":material/tune:"),
        st.Page("pages/gallery.py", title="Attribution gallery", icon=":material/grid_view:", default=True),
        st.Page("pages/shap_summary.py", title="SHAP summary", icon=":material/scatter_plot:"),
        *metric_pages(),
        st.Page("pages/roar.py", title="ROAR", icon=":material/model_training:"),
        st.Page("pages/benchmark.py", title="Benchmark", icon=":material/leaderboard:"),
        st.Page("pages/reports.py", title="Reports", icon=":material/summarize:"),
    ])
before_page_run()
navigation.run()
