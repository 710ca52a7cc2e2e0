"""The sidebar's choices shared by the analysis pages (images, the class to explain) and
the settings widgets built from the registries (methods and metrics with their
parameters). Every choice is kept across page switches (`session.kept_widget`).

Nothing here computes anything heavy: choosing images or a class only prepares the
images (preprocessing and their top-5, remembered per image), and analyses start
when the page's Run button is pressed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import streamlit as st

import explain
from explain.analyses import ClassChoice, CroppedImages, PreparedImages, crop_images
from explain.analyses.inputs import with_truth
from explain.data.datasets import DatasetError, DatasetLimits, ImageDataset
from explain.data.ground_truth import ImageTruth, ground_truth_from_upload
from explain.data.images import MAX_BYTES, UPLOAD_EXTENSIONS, NamedImage
from explain.analyses.base import PLAN_SIZE
from explain.jobs.budget import param_ceiling as budget_ceiling
from explain.methods.cache import predictions
from explain.methods.registry import Method, MethodSpec, Param
from explain.plots import pictures
from explain.metrics.registry import Metric, MetricFamily

from . import access
from .access import uploads_allowed
from .model import current_bundle, model_sidebar
from .session import kept, kept_widget, keep, start_page

DEFAULT_SAMPLES = ["chelsea", "coffee", "astronaut"]
DEFAULT_METHODS = ("gradcam", "integrated_gradients", "smoothgrad")
UPLOADED_KEY = "uploaded_images"
DATASET_KEY = "dataset"
DATASET_DEFAULT_PICKS = 6
CLASS_MODES = {"top1": "Top-1 prediction of each image", "class": "Choose a class", "label": "Each image's label"}
PREPARED_KEY = "_prepared"
TRUTH_KEY = "ground_truth"
PHOTO_COLUMNS = 4


@st.cache_data(show_spinner=False, max_entries=64)
def _decode_upload(data: bytes, name: str) -> tuple[NamedImage | None, str | None]:
    try:
        return NamedImage(name, explain.load_image_bytes(data, name)), None
    except explain.ImageLoadError as exc:
        return None, str(exc)


def image_picker() -> list[NamedImage]:
    """Sample photos, uploads and dataset images chosen in the sidebar, decoded safely;
    bad files are reported and skipped. Decoded uploads stay in the session (the
    uploader itself is empty again on another page), listed under "Uploaded images"."""
    st.sidebar.subheader("Images")
    names = kept_widget(
        st.sidebar.multiselect, "Sample photos", "samples", DEFAULT_SAMPLES, options=explain.sample_names()
    )
    uploaded: dict[str, NamedImage] = st.session_state.setdefault(UPLOADED_KEY, {})
    if uploads_allowed():
        uploads = st.sidebar.file_uploader(
            "Upload images (PNG, JPEG, WebP)", type=list(UPLOAD_EXTENSIONS), accept_multiple_files=True, key="uploads",
            max_upload_size=MAX_BYTES // 2**20,
        )
    else:
        uploads = []
        st.sidebar.caption("Uploads are locked on this instance; unlock them on the Model & data page.")
    fresh = []
    for upload in uploads or []:
        image, error = _decode_upload(upload.getvalue(), upload.name)
        if error:
            st.sidebar.error(error)
        elif upload.name not in uploaded or uploaded[upload.name].digest != image.digest:
            uploaded[upload.name] = image
            fresh.append(upload.name)
    if fresh:
        chosen = list(dict.fromkeys([*kept("uploaded", []), *fresh]))
        keep("uploaded", chosen)
        st.session_state["uploaded"] = chosen
    chosen_uploads = (
        kept_widget(st.sidebar.multiselect, "Uploaded images", "uploaded", [], options=list(uploaded))
        if uploaded
        else []
    )
    images = [NamedImage(n, explain.load_sample(n)) for n in names]
    images += [uploaded[n] for n in chosen_uploads if n in uploaded]
    return images + dataset_image_picker()


def current_dataset() -> ImageDataset | None:
    """The dataset chosen on the Model & data page, or None."""
    return st.session_state.get(DATASET_KEY)


def set_dataset(dataset: ImageDataset | None) -> None:
    st.session_state[DATASET_KEY] = dataset
    st.session_state.pop(TRUTH_KEY, None)  # ground truth belongs to the dataset it was given with


def current_truth() -> ImageTruth | None:
    """The ground truth given with the session's dataset, or None."""
    return st.session_state.get(TRUTH_KEY)


def ground_truth_uploader(dataset: ImageDataset, limits: DatasetLimits) -> None:
    """Masks (a zip mirroring the images) or boxes (CSV/JSON) for the dataset: decoded with
    the image checks; problems listed per image, the rest kept."""
    truth = current_truth()
    upload = st.file_uploader("Ground truth (optional): a zip of masks mirroring the images, or boxes "
                              "(CSV/JSON: image, x0, y0, x1, y1)", type=["zip", "csv", "json"], key="byom_truth")
    if st.button("Load ground truth", key="byom_load_truth"):
        try:
            if upload is None:
                raise DatasetError("Choose a masks zip or a boxes file first.")
            truth = ground_truth_from_upload(upload.getvalue(), upload.name,
                                             [(im.name, im.image.size) for im in dataset.images], limits)
        except DatasetError as exc:
            st.error(str(exc))
        else:
            st.session_state[TRUTH_KEY] = truth
    if truth is not None:
        st.markdown(f"**Ground truth** `{truth.name}`: masks for {len(truth.masks)} of {len(dataset)} images "
                    "(the Localisation page scores maps against them).")
        if truth.problems:
            with st.expander(f"{len(truth.problems)} problem(s): those images are skipped by localisation"):
                st.text("\n".join(truth.problems))


def dataset_image_picker() -> list[NamedImage]:
    """Sidebar multiselect over the session's dataset (first few preselected)."""
    dataset = current_dataset()
    if dataset is None or not len(dataset):
        return []
    labels = {image.name: label for image, label in zip(dataset.images, dataset.labels, strict=True)}
    by_name = {image.name: image for image in dataset.images}
    chosen = kept_widget(
        st.sidebar.multiselect,
        f"From dataset {dataset.name}",
        f"dataset_picks:{dataset.id}",
        list(by_name)[:DATASET_DEFAULT_PICKS],
        options=list(by_name),
        format_func=lambda n: f"{n} [{labels[n]}]" if labels[n] is not None else n,
    )
    return [by_name[n] for n in chosen]


def image_labels(bundle: explain.ModelBundle, images: Sequence[NamedImage]) -> list[int | None]:
    """Each image's labelled class as an index into the model's classes (None when the
    image has no label, or its label names no class of the model)."""
    dataset = current_dataset()
    if dataset is None:
        return [None] * len(images)
    targets = dict(zip((im.digest for im in dataset.images), dataset.model_targets(bundle.class_names), strict=True))
    return [targets.get(im.digest) for im in images]


def class_picker(bundle: explain.ModelBundle, labels: Sequence[int | None] = ()) -> ClassChoice:
    """The class to explain. "Each image's label" is offered when every chosen image has
    a label that names one of the model's classes."""
    st.sidebar.subheader("Class to explain")
    modes = ["top1", "class"] + (["label"] if labels and all(label is not None for label in labels) else [])
    mode = kept_widget(st.sidebar.radio, "Class", "class_mode", "top1", options=modes, format_func=CLASS_MODES.get,
                       label_visibility="collapsed")
    if mode == "top1":
        return ClassChoice()
    if mode == "label":
        return ClassChoice("label")
    index = kept_widget(st.sidebar.selectbox, "Class (type to search)", "class_choice", 0,
                        options=range(bundle.num_classes), format_func=lambda i: f"{i}: {bundle.class_names[i]}")
    return ClassChoice("class", int(index))


def page_setup() -> tuple[explain.ModelBundle, list[NamedImage], ClassChoice, list[int | None]]:
    """Sidebar shared by the analysis pages: model card, images, class. Stops the page
    with a message when no image is selected."""
    start_page()
    bundle = current_bundle()
    model_sidebar(bundle)
    images = image_picker()
    labels = image_labels(bundle, images)
    choice = class_picker(bundle, labels)
    if not images:
        st.info("Select a sample photo or upload an image in the sidebar to begin.")
        st.stop()
    return bundle, images, choice, labels


def prepared_images(bundle: explain.ModelBundle, images: Sequence[NamedImage]) -> PreparedImages:
    """The chosen images preprocessed with their top-5 (the first paint of every page);
    the last few selections are kept in the session, predictions per image process-wide.

    The top-5 never waits behind a job holding the model: when it needs the model and
    the model is busy, the photos are painted at once with a note, the top-5 is predicted
    in the background between two chunks of the job, and the page goes on once it is
    there (a one-second poll); nothing else of the page is drawn meanwhile."""
    truth = current_truth()
    key = (bundle.model_id, tuple(im.digest for im in images), None if truth is None else id(truth))
    store = st.session_state.setdefault(PREPARED_KEY, {})
    if key not in store:
        cropped = crop_images(bundle, images)
        prepared = cropped.predicted(wait=False)
        if prepared is None:
            photos_waiting_for_model(cropped)
            st.stop()
        store[key] = with_truth(prepared, images, truth)
        while len(store) > 4:
            store.pop(next(iter(store)))
    return store[key]


def photos_waiting_for_model(cropped: CroppedImages) -> None:
    """The photos alone, and a poll that reruns the page once their top-5 is known."""
    st.info("The model is busy with a run: these photos' top-5 predictions follow in a moment, "
            "then the rest of the page.", icon=":material/hourglass_top:")
    for start in range(0, len(cropped.refs), PHOTO_COLUMNS):
        for column, name, image in zip(st.columns(PHOTO_COLUMNS), cropped.names[start : start + PHOTO_COLUMNS],
                                       cropped.display[start : start + PHOTO_COLUMNS], strict=False):
            column.image(pictures.photo(image), caption=name, width="stretch")
    digests = [ref.digest for ref in cropped.refs]

    @st.fragment(run_every=1.0)
    def poll() -> None:  # also once the model is free: a failed prediction then shows its error in the page
        if not cropped.bundle.lock.held_by_other() or all(
                row is not None for row in predictions.known(cropped.bundle, digests)):
            st.rerun()

    poll()


CostOf = Callable[[Mapping[str, Any]], float]


def param_ceiling(param: Param, cost_of: CostOf | None) -> Any:
    """The largest value this session is offered for `param` (None: its registered
    maximum): capped by its cost under the session's budget (`explain.jobs.budget`)."""
    if cost_of is None:
        return None
    budget = access.budget()

    def cost(value: Any) -> float:
        try:
            return float(cost_of({param.name: value}))
        except (ValueError, TypeError, ZeroDivisionError):
            return math.inf

    return budget_ceiling(param, cost, budget.job_passes, cheap_only=budget.locked)


def param_widget(owner: str, param: Param, cost_of: CostOf | None = None) -> Any:
    """A widget for one registered parameter (of a method or a metric), kept across pages;
    `cost_of(overrides)`: the model passes per image with `overrides`, which caps the
    range by this session's budget."""
    key = f"param:{owner}:{param.name}"
    help_text = param.help or None
    ceiling = param_ceiling(param, cost_of)
    if ceiling is not None:
        help_text = f"{help_text or ''} At most {ceiling} in this session (its compute budget).".strip()
        if isinstance(st.session_state.get(key), (int, float)) and st.session_state[key] > ceiling:
            st.session_state[key] = type(st.session_state[key])(ceiling)
        param = dataclasses.replace(param, max=ceiling)
    if param.choices:
        return kept_widget(st.selectbox, param.label, key, param.default, options=param.choices, help=help_text)
    if isinstance(param.default, bool):
        return kept_widget(st.checkbox, param.label, key, param.default, help=help_text)
    if isinstance(param.default, int):
        return int(kept_widget(st.number_input, param.label, key, param.default, min_value=int(param.min),
                               max_value=int(param.max), step=int(param.step or 1), help=help_text))
    return float(kept_widget(st.slider, param.label, key, float(param.default), min_value=float(param.min),
                             max_value=float(param.max), step=float(param.step or 0.01), help=help_text))


def params_widgets(owner: str, params: Sequence[Param], columns: int = 4,
                   cost_of: CostOf | None = None) -> dict[str, Any]:
    """Widgets for a list of parameters, in columns (ranges capped by `cost_of`, see `param_widget`)."""
    values: dict[str, Any] = {}
    if not params:
        return values
    cols = st.columns(min(columns, len(params)))
    for i, param in enumerate(params):
        with cols[i % len(cols)]:
            values[param.name] = param_widget(owner, param, cost_of)
    return values


def method_picker(
    bundle: explain.ModelBundle, default: Sequence[str] = DEFAULT_METHODS, key: str = "methods"
) -> tuple[MethodSpec, ...]:
    """Multiselect over the registry (methods the model cannot run are listed with the
    reason instead) and, per chosen method, widgets for its registered parameters."""
    reasons = {m.key: m.unavailable_reason(bundle) for m in explain.list_methods()}
    labels = {m.key: m.label for m in explain.list_methods() if reasons[m.key] is None}
    chosen = kept_widget(st.multiselect, "Methods", key, [k for k in default if k in labels], options=list(labels),
                         format_func=labels.get)
    unavailable = [
        f"**{explain.get_method(k).label}**: {reason}" for k, reason in reasons.items() if reason is not None
    ]
    if unavailable:
        st.caption("Not available for this model: " + " · ".join(unavailable))
    with_params = [explain.get_method(k) for k in chosen if explain.get_method(k).params]
    settings: dict[str, dict[str, Any]] = {}
    if with_params:
        with st.expander("Method parameters"):
            for method in with_params:
                st.markdown(f"**{method.label}**")
                settings[method.key] = params_widgets(method.key, method.params, cost_of=method_cost(method))
    return tuple(MethodSpec.of(k, settings.get(k, {})) for k in chosen)


def method_cost(method: Method) -> CostOf:
    """Model passes per image of one map of `method` with some parameters changed."""
    defaults = method.resolve_params({})
    return lambda overrides: method.evals_per_image({**defaults, **overrides}, PLAN_SIZE)


def metric_cost(metric: MetricFamily) -> CostOf:
    """Model passes per image of `metric` (beyond the maps) with some parameters changed;
    recomputed maps costed at one pass each."""
    defaults = metric.resolve_params({})

    def cost(overrides: Mapping[str, Any]) -> float:
        params = {**defaults, **overrides}
        recomputed = metric.maps_per_image(params) if isinstance(metric, Metric) else 0
        return metric.passes(params, 1) + recomputed

    return cost
