"""Entry point: the navigation over the dashboard's pages.

A share link (`/?report=<id>`) shows that saved report alone, read-only, with no
navigation; everything else is the dashboard. Every registered metric gets a page:
its own file where it has one, else the generic metric page; families that name the
same `page` (the sanity checks) share one generic page titled by it.
"""

import re

import streamlit as st

from explain.config import cache_dir
from explain.metrics import list_metrics
from explain.storage import clean_stray_temporaries
from pages.ui.metric_page import render as render_metric_page
from pages.ui.metric_page import render_group as render_metric_group
from pages.ui.session import before_page_run, open_requested_page
from reports import ReportStore

METRIC_PAGE_FILES = {"deletion_insertion": "pages/deletion_insertion.py", "sic_aic": "pages/pic.py",
                     "Sanity checks": "pages/sanity_checks.py"}
METRIC_ICONS = {"deletion_insertion": ":material/trending_down:", "sic_aic": ":material/trending_up:",
                "Sanity checks": ":material/verified:"}


def metric_pages() -> list:
    slots: dict[str, list] = {}  # a family's own key, or the page it shares; in registration order
    for metric in list_metrics():
        slots.setdefault(metric.page or metric.key, []).append(metric)
    pages = []
    for slot, metrics in slots.items():
        icon = METRIC_ICONS.get(slot, ":material/query_stats:")
        shared = bool(metrics[0].page)
        title = slot if shared else metrics[0].label
        if slot in METRIC_PAGE_FILES:
            pages.append(st.Page(METRIC_PAGE_FILES[slot], title=title, icon=icon))
        elif shared:
            slug = re.sub(r"[^a-z0-9]+", "_", slot.lower()).strip("_")

            def page(
                keys: tuple[str, ...] = tuple(m.key for m in metrics), slug: str = slug, title: str = slot
            ) -> None:
                render_metric_group(keys, page=slug, title=title)
            page.__name__ = f"metrics_{slug}"
            pages.append(st.Page(page, title=title, icon=icon, url_path=slug))
        else:
            def page(key: str = slot) -> None:
                render_metric_page(key, page=key)
            page.__name__ = f"metric_{slot}"
            pages.append(st.Page(page, title=title, icon=icon, url_path=slot))
    return pages


@st.cache_resource(show_spinner=False)
def cleaned_at_start_up() -> int:
    """Once per server process: what killed writers left (stray `.tmp-*` files under the
    cache, reports saved without their metadata) is removed; returns how many files."""
    return ReportStore().clean() + clean_stray_temporaries(cache_dir())


cleaned_at_start_up()
st.set_page_config(page_title="Explain image classifiers", page_icon="🔍", layout="wide")
if "report" in st.query_params:
    navigation = st.navigation(
        [st.Page("pages/shared_report.py", title="Shared report", icon=":material/description:")], position="hidden"
    )
else:
    pages = [
        st.Page("pages/model_data.py", title="Model & data", icon=":material/tune:"),
        st.Page("pages/gallery.py", title="Attribution gallery", icon=":material/grid_view:", default=True),
        st.Page("pages/shap_summary.py", title="SHAP summary", icon=":material/scatter_plot:"),
        *metric_pages(),
        st.Page("pages/roar.py", title="ROAR", icon=":material/model_training:"),
        st.Page("pages/benchmark.py", title="Benchmark", icon=":material/leaderboard:"),
        st.Page("pages/compare_models.py", title="Compare models", icon=":material/compare:"),
        st.Page("pages/mistakes.py", title="Mistakes", icon=":material/report:"),
        st.Page("pages/reports.py", title="Reports", icon=":material/summarize:"),
    ]
    navigation = st.navigation(pages)
    open_requested_page(pages)
before_page_run()
navigation.run()
