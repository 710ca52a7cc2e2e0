"""SIC / AIC performance information curves (XRAI) for the selected images and methods."""

import streamlit as st

from explain import get_method
from explain.plots.curves import highlight_best, pic_figure, pic_table
from explain.metrics import AIC, SIC, pic_metrics, pic_strip, random_seed_masks
from pages.ui import report_builder, selection, session
from reports.sections import sic_aic_section

st.title("SIC / AIC")
st.caption(
    "Start from a blurred image (interpolated from 1% random seed pixels) and reveal the most salient pixels in growing "
    "fractions. x = information of the revealed image (lossless WebP size), normalised between the fully blurred image "
    "and the original; y = softmax score of the explained class (SIC, median over images) or whether the top-1 class "
    f"equals the original's (AIC, mean over images). {SIC.name} and {AIC.name}: {SIC.direction}."
)
bundle, images, target = selection.page_setup()
methods = selection.method_picker(bundle, default=["xrai", *selection.DEFAULT_METHODS])

with st.expander("Settings"):
    c1, c2, c3, c4 = st.columns(4)
    seed_fraction = c1.slider("Seed pixels (fraction)", 0.0, 0.05, 0.01, 0.005, key="pic_seed_fraction", format="%.3f")
    seed = int(c2.number_input("Random seed", 0, 2**31 - 1, 0, key="pic_seed"))
    min_pred_value = c3.slider("Minimum score on the original", 0.0, 1.0, 0.0, 0.05, key="pic_min_pred",
                               help="Images whose original class score is lower are skipped (the reference uses 0.8 by default)")
    keep_monotonous = c4.checkbox("Monotone curves", value=True, key="pic_monotone", help="Keep the normalised score non-decreasing, as in the paper")
    show_images = c4.checkbox("Show per-image curves", value=False, key="pic_show_images")

prepared, maps = selection.maps_for_selection(bundle, images, methods, target)
n, _, height, width = prepared.batch.shape
seed_masks = random_seed_masks(n, height, width, seed_fraction, seed)


key = (bundle.model_id, tuple(prepared.digests), target, repr(methods), tuple(maps), seed_fraction, seed, min_pred_value, keep_monotonous)
result = session.remember_with_progress(
    "pic", key, "SIC/AIC", "partially revealed images",
    lambda progress: pic_metrics(
        bundle, prepared.batch, maps, seed_masks, target, min_pred_value=min_pred_value,
        keep_monotonous=keep_monotonous, progress=progress,
    ),
)

labels = {k: get_method(k).label for k in result.methods}
first = result.methods[0]
for metric, curves in ((SIC, result.sic), (AIC, result.aic)):
    skipped = curves[first].skipped
    if skipped:
        st.warning(
            f"{metric.name.replace(' AUC', '')}: {len(skipped)} of {n} image(s) skipped, as the reference does: "
            + "; ".join(f"{prepared.names[s.index]}: {s.reason}" for s in skipped)
        )
report_builder.add_to_report(lambda: sic_aic_section(bundle, prepared.names, result, methods, {"seed pixels (fraction)": seed_fraction, "seed": seed, "minimum score on the original": min_pred_value, "monotone curves": keep_monotonous}, show_images), key="sic_aic")
left, right = st.columns(2)
left.plotly_chart(pic_figure(result.sic, labels, show_images), key="sic_chart")
right.plotly_chart(pic_figure(result.aic, labels, show_images), key="aic_chart")

st.subheader("Area under the curves")
table = pic_table(result.sic, result.aic, labels)
st.dataframe(highlight_best(table, {table.columns[0]: SIC, table.columns[1]: AIC}))

st.subheader("What the model saw")
c1, c2 = st.columns(2)
image_index = c1.selectbox("Image", range(n), format_func=lambda i: prepared.names[i], key="pic_strip_image")
method_key = c2.selectbox("Method", result.methods, format_func=labels.get, key="pic_strip_method")
explained = int(result.targets[image_index])
strip = session.remember(
    "pic_strip", (key, image_index, method_key),
    lambda: pic_strip(bundle, prepared.batch[image_index], maps[method_key][image_index], seed_masks[image_index], explained, result.thresholds),
)
st.image(
    list(strip.images), width=150,
    caption=[
        f"{t:.1%} revealed · info {i:.2f} · p={s:.3f}"
        for t, i, s in zip(strip.thresholds, strip.information, strip.scores)
    ],
)
st.caption(f"First: the fully blurred image (seed pixels only); last: the original. p = probability of class {explained}: {bundle.class_names[explained]}.")
st.session_state["pic_result"] = result
