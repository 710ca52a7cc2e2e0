"""Deletion & insertion curves (RISE) for the selected images, class and methods."""

import streamlit as st

from explain import get_method
from explain.plots.curves import auc_table, curves_figure, highlight_best
from explain.metrics import DELETION, INSERTION, SUBSTRATES, deletion_insertion
from explain.metrics.deletion import DEFAULT_STEPS
from pages.ui import report_builder, selection, session
from reports.sections import deletion_insertion_section

st.title("Deletion & insertion")
st.caption(
    "Pixels are ranked by attribution. Deletion replaces the most relevant first with a substrate; insertion starts "
    "from a blurred image and puts them back. y = probability of the explained class. "
    f"{DELETION.name}: {DELETION.direction}; {INSERTION.name}: {INSERTION.direction}."
)
bundle, images, target = selection.page_setup()
methods = selection.method_picker(bundle)

c1, c2, c3 = st.columns(3)
substrate = c1.selectbox(
    "Deletion substrate", SUBSTRATES, key="di_substrate",
    help="zero: 0 after normalisation (the normalisation mean colour); blur: Gaussian blur (sigma 5); mean: the image's mean colour",
)
steps = c2.slider("Steps", 4, 128, DEFAULT_STEPS, key="di_steps", help="Number of removal/insertion steps (forward passes per curve - 1)")
show_images = c3.checkbox("Show per-image curves", value=True, key="di_show_images")

prepared, maps = selection.maps_for_selection(bundle, images, methods, target)


key = (bundle.model_id, tuple(prepared.digests), target, repr(methods), tuple(maps), substrate, steps)
result = session.remember_with_progress(
    "deletion_insertion", key, "Deletion and insertion", "forward passes",
    lambda progress: deletion_insertion(
        bundle, prepared.batch, maps, target, substrate=substrate, steps=steps, progress=progress
    ),
)

labels = {k: get_method(k).label for k in result.methods}
report_builder.add_to_report(lambda: deletion_insertion_section(bundle, prepared.names, result, methods, show_images), key="deletion_insertion")
left, right = st.columns(2)
left.plotly_chart(curves_figure(result.deletion, labels, show_images), key="deletion_chart")
right.plotly_chart(curves_figure(result.insertion, labels, show_images), key="insertion_chart")

st.subheader("Area under the curves")
table = auc_table([result.deletion, result.insertion], labels)
st.dataframe(highlight_best(table, {f"{DELETION.name} (mean)": DELETION, f"{INSERTION.name} (mean)": INSERTION}))
st.caption(
    f"Mean and standard error over {len(prepared.names)} image(s); best in green. Explained classes: "
    + ", ".join(f"{name}: {bundle.class_names[int(c)]}" for name, c in zip(prepared.names, result.targets))
)
st.session_state["deletion_insertion_result"] = result
