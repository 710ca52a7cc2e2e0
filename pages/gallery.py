"""Attribution gallery: rows = images, columns = methods, heatmaps over the image."""

import streamlit as st

import explain
from explain.plots.overlay import COLORMAPS, SIGN_MODES, DisplaySettings, overlay
from pages.ui import report_builder, selection
from reports.sections import GALLERY_COLUMNS, gallery_section

st.title("Attribution gallery")
bundle, images, target = selection.page_setup()
methods = selection.method_picker(bundle)

with st.expander("Display", expanded=False):
    c1, c2, c3, c4 = st.columns(4)
    display = DisplaySettings(
        colormap=c1.selectbox("Colormap", COLORMAPS, key="colormap"),
        opacity=c2.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="opacity"),
        clip_percentile=c3.slider("Clip at percentile", 90.0, 100.0, 99.0, 0.5, key="clip_percentile"),
        sign=c4.selectbox("Values", SIGN_MODES, key="sign", help="absolute: |map|; positive: negatives cut; signed: diverging scale"),
    )

prepared, maps = selection.maps_for_selection(bundle, images, methods, target)
st.session_state["gallery_result"] = {"prepared": prepared, "maps": maps, "methods": methods, "target": target, "display": display, "bundle": bundle}
report_builder.add_to_report(lambda: gallery_section(bundle, prepared.names, prepared.display, maps, methods, target, prepared.top5, display), key="gallery")

# At most GALLERY_COLUMNS pictures side by side (each under its heading): wider rows wrap.
columns = ["Image", *[m for m in methods if m in maps]]
width = min(len(columns), GALLERY_COLUMNS)
for row, name in enumerate(prepared.names):
    top5 = prepared.top5[row]
    explained = target if target is not None else top5[0][0]
    for start in range(0, len(columns), width):
        for cell, key in zip(st.columns(width), columns[start : start + width]):
            if key == "Image":
                cell.markdown("**Image**")
                cell.image(prepared.display[row], caption=name, width="stretch")
                cell.markdown("\n".join(f"{j + 1}. {label} — {p:.1%}" for j, (_, label, p) in enumerate(top5)))
            else:
                cell.markdown(f"**{explain.get_method(key).label}**")
                cell.image(overlay(prepared.display[row], maps[key][row], display), width="stretch",
                           caption=f"class {explained}: {bundle.class_names[explained]}")
