"""Mistakes: which images a model gets wrong, and why. The confusion matrix; picking a
cell (a true/predicted pair) lists its images with the predicted and the true class's
maps side by side and the top-5; filters for images the models disagree on and for
confidently wrong predictions. From models run here on labelled images (a job) or
from a results directory (its rows and stored maps; nothing computed)."""

from __future__ import annotations

import streamlit as st

import explain
from explain.analyses import ClassChoice, MistakesAnalysis, MistakesResult, mistakes_from_results, prepare_images
from explain.data.datasets import DatasetError
from explain.methods.registry import MethodSpec
from explain.models import CustomModelError
from explain.plots.overlay import overlay
from pages.ui import jobs, model_inputs, report_builder, selection
from pages.ui.text import plain
from pages.ui.session import kept_widget, start_page
from reports.sections_compare import mistakes_section

PAGE = "mistakes"
RUN, OPEN = "Run models on labelled images", "Open results"
ANY = "any"

start_page()
st.title("Mistakes")
st.caption("The images a model gets wrong: the confusion matrix, then per cell the predicted and the true class's maps "
           "side by side. Filters: images the models disagree on, confidently wrong predictions.")


def draw(result: MistakesResult, running: bool = False) -> None:
    """Confusion matrix, cell and filters, then the listed images with their maps."""
    c1, c2, c3 = st.columns([2, 1, 1])
    model = c1.selectbox("Model", range(len(result.models)), index=len(result.models) - 1,
                         format_func=lambda k: result.models[k], key=f"{PAGE}:model")
    disagree = c2.toggle("Models disagree", key=f"{PAGE}:disagree", disabled=len(result.models) < 2,
                         help="only images on which the models' top-1 differ")
    confident = c3.toggle("Confidently wrong", key=f"{PAGE}:confident", help="only mistakes of high top-1 probability")
    threshold = st.slider("Confidence at least", 0.5, 1.0, 0.9, 0.01, key=f"{PAGE}:threshold") if confident else None
    left, right = st.columns([3, 2])
    figure = result.confusion_figure(model)
    event = left.plotly_chart(figure, key=f"{PAGE}:confusion", on_select="rerun", selection_mode="points",
                              config={"displaylogo": False})
    pairs = result.mistakes_by_pair(model)
    right.markdown("**Most frequent mistakes**")
    right.dataframe(pairs.head(15), hide_index=True, key=f"{PAGE}:pairs")
    classes = list(result.confusion(model).index)
    clicked = event.get("selection", {}).get("points", []) if hasattr(event, "get") else []
    cell = (str(clicked[0].get("y", ANY)), str(clicked[0].get("x", ANY))) if clicked else None
    if cell is not None and cell != st.session_state.get(f"{PAGE}:clicked"):  # a new click on a cell picks its pair
        st.session_state[f"{PAGE}:clicked"] = cell
        st.session_state[f"{PAGE}:true"], st.session_state[f"{PAGE}:predicted"] = cell
    p1, p2 = st.columns(2)
    true = p1.selectbox("True class", [ANY, *classes], key=f"{PAGE}:true")
    predicted = p2.selectbox("Predicted class", [ANY, *classes], key=f"{PAGE}:predicted")
    true_value, predicted_value = (None if true == ANY else true), (None if predicted == ANY else predicted)
    listed = result.listed(model, true_value, predicted_value, disagree=disagree, min_confidence=threshold)
    st.markdown(f"**{len(listed)} mistake(s)** · {plain(result.note)}")  # the note names a results folder
    for row in listed.head(24).itertuples():
        maps = result.image_maps(model, int(row.image_index))
        cells = st.columns(1 + 2 * len(result.labels))
        if maps is None:
            cells[0].caption(f"{row.image}: no crop or maps stored")
        else:
            cells[0].image(maps.display, caption=f"{row.image}", width="stretch")
        cells[0].caption(f"true **{row.true}** · predicted **{row.predicted}** ({row.probability:.0%})  \n{row.top5}")
        column = 1
        for ident, label in result.labels.items():
            for kind, found in (("predicted", maps.predicted if maps else {}), ("true", maps.true if maps else {})):
                value = found.get(ident)
                if value is None or maps is None:
                    cells[column].caption(f"{label}, {kind} class: " + ("computing…" if running else "not available"))
                else:
                    cells[column].image(overlay(maps.display, value), width="stretch",
                                        caption=f"{label}: {kind} "
                                                f"({row.predicted if kind == 'predicted' else row.true})")
                column += 1
    if not running:
        report_builder.add_to_report(lambda: mistakes_section(result, model, true_value, predicted_value,
                                                              disagree=disagree, min_confidence=threshold), key=PAGE)


source = kept_widget(st.radio, "Source", f"{PAGE}:source", RUN, options=[RUN, OPEN], horizontal=True,
                     label_visibility="collapsed")
if source == OPEN:
    opened = model_inputs.results_picker(PAGE)
    if opened is not None:
        try:
            draw(mistakes_from_results(opened))
        except ValueError as exc:
            st.error(str(exc))
else:
    sidebar_images = selection.image_picker()
    with st.form(f"{PAGE}_settings", border=False):
        models = model_inputs.model_widgets(PAGE, [explain.DEFAULT_MODEL])
        image_kind, folder, count = model_inputs.image_widgets(PAGE)
        m1, m2 = st.columns([3, 1])
        method_keys = kept_widget(m1.multiselect, "Methods", f"{PAGE}:methods", ["gradcam"],
                                  options=[m.key for m in explain.list_methods()],
                                  format_func=lambda k: explain.get_method(k).label)
        explained = kept_widget(m2.number_input, "Mistakes explained per model", f"{PAGE}:explained", 12, min_value=0,
                                max_value=200)
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    pending = None
    try:
        bundles = model_inputs.chosen_bundles(models)
        chosen = model_inputs.chosen_images(image_kind, folder, count, sidebar_images)
        labelled = [i for i, label in enumerate(chosen.labels) if label is not None]
        if not labelled:
            raise ValueError("Mistakes need labelled images: the MNIST subset, a labelled folder, or a dataset "
                             "chosen on the Model & data page.")
        for bundle in bundles:
            for key in method_keys:
                explain.get_method(key).check_available(bundle)
        images = [chosen.images[i] for i in labelled]
        prepared, subjects = [], []
        for bundle in bundles:
            targets = [chosen.targets(bundle)[i] for i in labelled]
            if any(t is None for t in targets):
                raise ValueError(f"Some labels name no class of {bundle.name}: "
                                 "choose images labelled with its classes.")
            prepared.append(prepare_images(bundle, images))
            subjects.append(prepared[-1].subject(ClassChoice("label"), targets))
        pending = MistakesAnalysis(tuple(subjects), tuple(MethodSpec.of(k) for k in method_keys), int(explained))
    except (DatasetError, CustomModelError, ValueError, OSError) as exc:
        st.info(str(exc))
    if pending is not None:
        def draw_job(result, job) -> None:
            draw(result, running=job.active)

        def placeholder() -> None:
            st.caption(f"Press Run to predict {len(pending.subjects[0].images)} labelled image(s) with "
                       f"{len(pending.subjects)} model(s) and explain their mistakes.")

        jobs.follow(PAGE, pending, tuple(prepared), run, draw_job, placeholder)
