"""SHAP summary: per-image SHAP image plots (top-k classes) and, across the selected
images, a beeswarm over the cells of a fixed grid plus the mean |SHAP| per cell."""

import numpy as np
import streamlit as st

import explain
from explain.methods.shap_lime import SHAP_METHODS
from explain.plots.shap import beeswarm_figure, cell_importance_figure, shap_image_figure
from explain.analyses.shap_grid import maps_for_classes, summarize_grid, top_classes
from pages.ui import model, report_builder, selection
from reports.sections import shap_summary_section

st.title("SHAP summary")
bundle, images, target = selection.page_setup()

left, middle, right, last = st.columns(4)
method = left.selectbox("Explainer", SHAP_METHODS, format_func=lambda k: explain.get_method(k).label, key="shap_method")
top_k = middle.number_input("Classes per image", 1, min(5, bundle.num_classes), min(2, bundle.num_classes), key="shap_top_k", help="The image plot shows the top-k predicted classes.")
cells = right.slider("Grid cells per side", 2, 16, 7, key="shap_grid", help="Features of the summary: cells of this grid, the same in every image.")
shown = last.slider("Cells shown in the beeswarm", 3, 64, 15, key="shap_features")
spec = explain.get_method(method)
with st.expander(f"{spec.label} parameters"):
    st.caption(spec.description)
    params = {p.name: selection.param_widget(method, p) for p in spec.params}

dataset = selection.current_dataset()
if dataset is not None and len(dataset):
    if st.checkbox(f"Summarise the whole dataset {dataset.name} ({len(dataset)} images)", key="shap_whole_dataset"):
        chosen = {im.digest for im in images}
        images = images + [im for im in dataset.images if im.digest not in chosen]
plotted_count = st.slider("Images with a per-image plot", 1, max(1, len(images)), min(6, len(images)), key=f"shap_plotted:{len(images)}") \
    if len(images) > 1 else 1

prepared = selection.prepare(bundle, images)
n = len(prepared.names)
plotted = slice(0, plotted_count)
classes = top_classes(prepared.top5[plotted], int(top_k))
explained = np.array([row[0][0] for row in prepared.top5]) if target is None else np.full(n, target)
per_class_pairs = plotted_count * int(top_k)
bar = st.progress(0.0, text=f"{spec.label}...")


def report(done: int, total: int, offset: int = 0) -> None:
    everything = per_class_pairs + n
    bar.progress(min(1.0, (offset + done) / everything), text=f"{spec.label}: {offset + done}/{everything} image-class pairs")


cache = model.shared_cache()
try:
    per_class = maps_for_classes(cache, bundle, prepared.batch[plotted], prepared.digests[plotted], method, classes,
                                 progress=report, **params)
    # Explained-class maps of every image; those already computed above come from the cache.
    maps = explain.cached_attribute(cache, bundle, prepared.batch, prepared.digests, method, explained.tolist(),
                                    progress=lambda d, t: report(d, t, per_class_pairs), **params)
except (ValueError, RuntimeError) as exc:
    bar.empty()
    st.error(f"{spec.label} failed: {exc}")
    st.stop()
bar.empty()

summary = summarize_grid(
    maps, prepared.display, (cells, cells), image_names=prepared.names, targets=explained.tolist(),
    target_names=[bundle.class_names[c] for c in explained], method=spec.label,
)
st.session_state["shap_summary_result"] = {
    "method": method, "params": params, "summary": summary, "per_class": per_class, "classes": classes,
    "prepared": prepared,
}
report_builder.add_to_report(lambda: shap_summary_section(bundle, prepared.names, prepared.display, prepared.top5, per_class, summary,
                                                  method, params, int(shown)), key="shap_summary")

st.subheader("Per image")
st.caption("Red pixels raise the class score, blue pixels lower it; the maps of one image share one symmetric scale.")
for i, name in enumerate(prepared.names[plotted]):
    titles = [f"{bundle.class_names[c]} ({p:.0%})" for (c, _, p) in prepared.top5[i][: int(top_k)]]
    st.plotly_chart(shap_image_figure(prepared.display[i], per_class[i], titles, image_title=name),
                    key=f"shap_image_{i}", width="stretch")

st.subheader(f"Across {n} image{'s' if n != 1 else ''}")
explained_text = "each image's top-1 class" if target is None else f"class {target}: {bundle.class_names[target]}"
st.caption(f"Features are the cells of a {cells} x {cells} grid (r1c1 = top left); explained: {explained_text}. "
           "Each dot is one image; colour is the cell's mean intensity.")
chart, heat = st.columns([3, 2])
chart.plotly_chart(beeswarm_figure(summary, max_features=int(shown)), key="shap_beeswarm", width="stretch")
mean_image = prepared.display.astype(np.float64).mean(axis=0).round().astype(np.uint8)
heat.plotly_chart(cell_importance_figure(summary, mean_image), key="shap_cells", width="stretch")
heat.markdown("**Most important cells**\n\n" + "\n".join(
    f"{rank}. {label}: mean |SHAP| {value:.3g}" for rank, (label, value) in enumerate(summary.ranked(5), start=1)
))
