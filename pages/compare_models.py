"""Compare models: two or more models explained on the same images by the same methods,
side by side (grid image x model per method), how alike their maps are per pair and
image, whether their top-1 agree, and the map drift across checkpoints. From models
run here (a job; maps stored by content) or from a results directory's stored maps
(nothing computed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

import explain

from explain.analyses import ComparisonResult, ModelComparison, comparison_from_results, prepare_images
from explain.analyses.compare import DEFAULT_MEASURE, MEASURE_LABELS, MEASURES
from explain.data.datasets import DatasetError
from explain.evaluation import ResultsDir
from explain.methods.registry import MethodSpec
from explain.models import CustomModelError
from explain.plots.overlay import overlay
from pages.ui import jobs, model_inputs, report_builder, selection
from pages.ui.session import kept_widget, start_page
from pages.ui.text import plain
from reports.sections_compare import compare_section

PAGE = "compare"
RUN, OPEN = "Run models", "Open results (stored maps)"
GRID_IMAGES = 12

start_page()
st.title("Compare models")
st.caption("Several models (checkpoints of one run, a teacher and its student, before and after fine-tuning) explained "
           "on the same images: maps side by side, their similarity per pair of models, top-1 agreement and the drift "
           "of the maps to the last checkpoint.")


@st.cache_resource(max_entries=4, show_spinner="Reading the stored maps and comparing them...")
def stored_comparison(root: str, signature: tuple, max_images: int) -> ComparisonResult:
    from explain.evaluation import EvaluationResult

    return comparison_from_results(EvaluationResult.open(root), max_images=max_images)


def draw(result: ComparisonResult, running: bool = False) -> None:
    """The comparison: drift and pair table, then per method the grid image x model."""
    c1, c2, c3 = st.columns([2, 2, 1])
    measure = c1.selectbox("Similarity", MEASURES, index=MEASURES.index(DEFAULT_MEASURE),
                           format_func=MEASURE_LABELS.get, key=f"{PAGE}:measure")
    only_disagree = c2.toggle("Only images where the models disagree", key=f"{PAGE}:disagree")
    shown = c3.number_input("Images in the grid", 1, 64, GRID_IMAGES, key=f"{PAGE}:grid")
    if not result.complete:
        st.caption(f"{len(result.models)} model(s) so far…")
    else:
        left, right = st.columns([3, 2])
        left.plotly_chart(result.drift_figure(measure), key=f"{PAGE}:drift", config={"displaylogo": False})
        first = next(iter(result.labels))
        right.plotly_chart(result.similarity_figure(first, measure), key=f"{PAGE}:pairs", config={"displaylogo": False})
        st.dataframe(result.pair_table(), hide_index=True, key=f"{PAGE}:table")
        with st.expander("Per image and pair of models"):
            chosen = st.selectbox("Method", list(result.labels), format_func=result.labels.get, key=f"{PAGE}:per_image")
            st.dataframe(result.image_table(chosen, measure), hide_index=True, key=f"{PAGE}:images")
        st.caption(f"The models' top-1 differ on {len(result.disagreements())} of {len(result.image_names)} image(s).")
    rows = result.disagreements() if only_disagree and result.complete else list(range(len(result.image_names)))
    rows = rows[: int(shown)]
    for ident, label in result.labels.items():
        st.subheader(plain(label))  # names may come from a results folder: plain text
        header = st.columns(len(result.models) + 1)
        header[0].markdown("**Image**")
        for k, model in enumerate(result.models):
            header[k + 1].markdown(f"**{plain(model)}**")
        for n in rows:
            cells = st.columns(len(result.models) + 1)
            cells[0].image(result.display[n], caption=str(result.image_names[n]), width="stretch")
            for k in range(len(result.models)):
                if not np.isnan(result.maps[ident][k, n]).any():
                    caption = result.caption(k, n)
                    if result.complete and k < len(result.models) - 1:
                        value = result.similarity[ident][measure][k, -1, n]
                        caption += f" · {MEASURE_LABELS[measure]} to last {value:.2f}"
                    picture = overlay(result.display[n], result.maps[ident][k, n])
                    cells[k + 1].image(picture, caption=caption, width="stretch")
                else:
                    cells[k + 1].caption("computing…" if running else "not computed")
    if result.complete and not running:
        report_builder.add_to_report(lambda: compare_section(result, measure=measure), key=PAGE)


source = kept_widget(st.radio, "Source", f"{PAGE}:source", RUN, options=[RUN, OPEN], horizontal=True,
                     label_visibility="collapsed")
if source == OPEN:
    opened = model_inputs.results_picker(PAGE)
    if opened is not None:
        count = st.columns(3)[0].number_input("Images compared (the first of the run)", 1, 2000, 200,
                                              key=f"{PAGE}:stored_images")
        store = ResultsDir(opened.root)
        manifest = Path(opened.root) / "_manifest.json"
        try:
            result = stored_comparison(str(opened.root), (len(store.done()), manifest.stat().st_mtime_ns), int(count))
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.caption(f"From {plain(opened.title)}: {len(result.models)} models × {len(result.image_names)} images, "
                       "maps as the run stored them (nothing computed).")
            draw(result)
else:
    sidebar_images = selection.image_picker()
    with st.form(f"{PAGE}_settings", border=False):
        models = model_inputs.model_widgets(PAGE, [])
        image_kind, folder, count = model_inputs.image_widgets(PAGE)
        method_keys = kept_widget(st.multiselect, "Methods", f"{PAGE}:methods", ["gradcam", "saliency"],
                                  options=[m.key for m in explain.list_methods()],
                                  format_func=lambda k: explain.get_method(k).label)
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    pending = None
    try:
        bundles = model_inputs.chosen_bundles(models)
        if len(bundles) < 2:
            raise ValueError("Choose two or more models (named models, or a glob matching two or more checkpoints).")
        chosen = model_inputs.chosen_images(image_kind, folder, count, sidebar_images)
        if not chosen.images:
            raise ValueError("Choose images: the sidebar's, the MNIST subset or a labelled folder.")
        if not method_keys:
            raise ValueError("Choose at least one method.")
        prepared = tuple(prepare_images(b, list(chosen.images)) for b in bundles)
        for bundle in bundles:
            for key in method_keys:
                explain.get_method(key).check_available(bundle)
        pending = ModelComparison(tuple(p.subject() for p in prepared), tuple(MethodSpec.of(k) for k in method_keys))
    except (DatasetError, CustomModelError, ValueError, OSError) as exc:
        st.info(str(exc))
    if pending is not None:
        def draw_job(result, job) -> None:
            draw(result, running=job.active)

        def placeholder() -> None:
            st.caption(f"Press Run to explain {len(pending.subjects[0].images)} image(s) with "
                       f"{len(pending.subjects)} models.")

        jobs.follow(PAGE, pending, prepared, run, draw_job, placeholder)
