"""Entry point: the navigation over the dashboard's pages.

A share link (`/?report=<id>`) shows that saved report alone, read-only, with no
navigation; everything else is the dashboard.
"""

import streamlit as st

from pages.ui.session import before_page_run

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
        st.Page("pages/deletion_insertion.py", title="Deletion & insertion", icon=":material/trending_down:"),
        st.Page("pages/pic.py", title="SIC / AIC", icon=":material/trending_up:"),
        st.Page("pages/roar.py", title="ROAR", icon=":material/model_training:"),
        st.Page("pages/reports.py", title="Reports", icon=":material/summarize:"),
    ])
before_page_run()
navigation.run()
