"""SHAP summary: per-image SHAP image plots (top-k classes) and, across the selected
images, a beeswarm over the cells of a fixed grid plus the mean |SHAP| per cell.
Settings in a form; the maps come from a background job; grid and shown cells are
display choices that recompute nothing."""

import numpy as np
import streamlit as st

import explain
from explain.analyses import ShapSummary
from explain.methods.registry import MethodSpec
from explain.methods.shap_lime import SHAP_METHODS
from explain.plots.shap import beeswarm_figure, cell_importance_figure, shap_image_figure
from pages.ui import jobs, report_builder, selection
from pages.ui.session import kept_widget
from reports import build_section

PAGE = "shap_summary"

st.title("SHAP summary")
bundle, images, choice, labels = selection.page_setup()
dataset = selection.current_dataset()

with st.form("shap_settings", border=False):
    left, middle, right = st.columns(3)
    method = kept_widget(left.selectbox, "Explainer", "shap_method", SHAP_METHODS[0], options=SHAP_METHODS,
                         format_func=lambda k: explain.get_method(k).label)
    top_k = kept_widget(middle.number_input, "Classes per image", "shap_top_k", min(2, bundle.num_classes), min_value=1,
                        max_value=min(5, bundle.num_classes), help="The image plot shows the top-k predicted classes.")
    plotted_count = kept_widget(
        right.number_input, "Images with a per-image plot", "shap_plotted", 6, min_value=1, max_value=64
    )
    whole = False
    if dataset is not None and len(dataset):
        whole = kept_widget(
            st.checkbox,
            f"Summarise the whole dataset {dataset.name} ({len(dataset)} images)",
            "shap_whole_dataset",
            False,
        )
    spec = explain.get_method(method)
    with st.expander("Explainer parameters"):
        st.caption(spec.description)
        params = selection.params_widgets(method, spec.params, cost_of=selection.method_cost(spec))
    run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
c1, c2 = st.columns(2)
cells = kept_widget(c1.slider, "Grid cells per side", "shap_grid", 7, min_value=2, max_value=16,
                    help="Features of the summary: cells of this grid, the same in every image.")
shown = kept_widget(c2.slider, "Cells shown in the beeswarm", "shap_features", 15, min_value=3, max_value=64)

if whole:
    chosen = {im.digest for im in images}
    images = images + [im for im in dataset.images if im.digest not in chosen]
    labels = selection.image_labels(bundle, images)
prepared = selection.prepared_images(bundle, images)
try:
    pending = ShapSummary(
        prepared.subject(choice, labels), MethodSpec.of(method, params), int(top_k), int(plotted_count)
    )
except ValueError as exc:
    st.error(str(exc))
    st.stop()


def draw(result, job) -> None:
    view = result.images
    summary = result.summary(int(cells))
    st.subheader("Per image")
    st.caption(
        "Red pixels raise the class score, blue pixels lower it; the maps of one image share one symmetric scale."
    )
    for i in range(result.per_class.shape[0]):
        st.plotly_chart(
            shap_image_figure(view.display[i], result.per_class[i], result.class_titles(i), image_title=view.names[i]),
            key=f"shap_image_{i}",
            width="stretch",
        )
    n = len(view.names)
    st.subheader(f"Across {n} image{'s' if n != 1 else ''}")
    st.caption(
        f"Features are the cells of a {cells} x {cells} grid (r1c1 = top left); explained: "
        f"{result.analysis.subject.class_choice.describe(dict(zip(view.targets, view.target_names, strict=True)))}. "
        "Each dot is one image; colour is the cell's mean intensity."
    )
    chart, heat = st.columns([3, 2])
    chart.plotly_chart(beeswarm_figure(summary, max_features=int(shown)), key="shap_beeswarm", width="stretch")
    mean_image = view.display.astype(np.float64).mean(axis=0).round().astype(np.uint8)
    heat.plotly_chart(cell_importance_figure(summary, mean_image), key="shap_cells", width="stretch")
    heat.markdown("**Most important cells**\n\n" + "\n".join(
        f"{rank}. {label}: mean |SHAP| {value:.3g}" for rank, (label, value) in enumerate(summary.ranked(5), start=1)
    ))
    if not job.active:  # buttons only once the job has ended
        report_builder.add_to_report(lambda: build_section(result, int(cells), int(shown)), key=PAGE)


jobs.follow(
    PAGE,
    pending,
    prepared,
    run,
    draw,
    lambda: st.info(f"Press Run to explain {len(prepared)} image(s) with {spec.label}."),
)
