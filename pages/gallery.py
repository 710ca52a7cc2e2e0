"""Attribution gallery: rows = images, columns = methods, heatmaps over the image.

The images and their top-5 show at once; maps are computed by a background job when
Run is pressed (or on the first visit, with the defaults) and appear as they finish.
Photos and overlays are encoded once (`explain.plots.pictures`): the grid is redrawn
every second while the job runs, in every session following it.
"""

import streamlit as st

from explain.analyses import AttributionMaps
from explain.plots import pictures
from explain.plots.overlay import COLORMAPS, SIGN_MODES, DisplaySettings
from pages.ui import jobs, report_builder, selection
from pages.ui.session import keep, kept, kept_widget
from reports.sections import GALLERY_COLUMNS as COLUMNS  # image + methods per row, as in reports
from reports import build_section

PAGE = "gallery"

st.title("Attribution gallery")
bundle, images, choice, labels = selection.page_setup()
prepared = selection.prepared_images(bundle, images)

with st.form("gallery_settings", border=False):
    methods = selection.method_picker(bundle)
    run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")

with st.expander("Display", expanded=False):
    c1, c2, c3, c4 = st.columns(4)
    display = DisplaySettings(
        colormap=kept_widget(c1.selectbox, "Colormap", "colormap", "jet", options=COLORMAPS),
        opacity=kept_widget(c2.slider, "Overlay opacity", "opacity", 0.6, min_value=0.0, max_value=1.0, step=0.05),
        clip_percentile=kept_widget(
            c3.slider, "Clip at percentile", "clip_percentile", 99.0, min_value=90.0, max_value=100.0, step=0.5
        ),
        sign=kept_widget(
            c4.selectbox,
            "Values",
            "sign",
            "absolute",
            options=SIGN_MODES,
            help="absolute: |map|; positive: negatives cut; signed: diverging scale",
        ),
    )

try:
    pending = AttributionMaps(prepared.subject(choice, labels), methods)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
first_visit = not kept("gallery_ran")
keep("gallery_ran", True)
if not methods:
    st.info("Choose at least one method, then press Run.")


def image_cell(image, name: str, top5) -> None:
    st.image(pictures.photo(image), caption=name, width="stretch")
    st.markdown("\n".join(f"{j + 1}. {label} — {p:.1%}" for j, (_, label, p) in enumerate(top5)))


def draw(result, job) -> None:
    """Rows of image + maps; a map not computed yet shows what is happening instead."""
    view = result.images
    specs = [s for s in result.analysis.methods]
    for row, name in enumerate(view.names):
        cells = [None, *specs]
        for start in range(0, len(cells), COLUMNS):
            columns = st.columns(COLUMNS)
            for column, spec in zip(columns, cells[start : start + COLUMNS], strict=False):  # a last row fills fewer
                with column:
                    if spec is None:
                        image_cell(view.display[row], name, view.top5[row])
                    elif result.is_ready(spec.ident, row):
                        st.markdown(f"**{spec.label}**")
                        st.image(pictures.overlay_picture(view.display[row], result.maps[spec.ident][row], display),
                                 width="stretch", caption=view.explained(row))
                    else:
                        st.markdown(f"**{spec.label}**")
                        st.caption("computing…" if job.active else "not computed")
    if result.complete and result.analysis.methods and not job.active:  # buttons only once the job has ended
        report_builder.add_to_report(lambda: build_section(result, display), key=PAGE)


def images_only() -> None:
    """The chosen images and their top-5 (the first paint, before any map)."""
    for row, name in enumerate(prepared.names):
        with st.columns(COLUMNS)[0]:
            image_cell(prepared.display[row], name, prepared.top5[row])


jobs.follow(PAGE, pending, prepared, bool(methods) and (run or first_visit), draw, images_only)
