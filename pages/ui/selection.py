"""The sidebar's choices shared by the analysis pages (images, class, methods with their
parameters) and what pages do with them (prepare the images, compute maps)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import streamlit as st
import torch

import explain
from explain.data.datasets import ImageDataset
from explain.data.images import MAX_BYTES, UPLOAD_EXTENSIONS, NamedImage

from .access import uploads_allowed
from .model import current_bundle, model_sidebar, shared_cache
from .session import leave_legacy_pages_mode

DEFAULT_SAMPLES = ["chelsea", "coffee", "astronaut"]
DEFAULT_METHODS = ["gradcam", "integrated_gradients", "smoothgrad"]
UPLOADED_KEY = "uploaded_images"
DATASET_KEY = "dataset"
DATASET_DEFAULT_PICKS = 6


@st.cache_data(show_spinner=False, max_entries=64)
def _decode_upload(data: bytes, name: str) -> tuple[NamedImage | None, str | None]:
    try:
        return NamedImage(name, explain.load_image_bytes(data, name)), None
    except explain.ImageLoadError as exc:
        return None, str(exc)


def image_picker() -> list[NamedImage]:
    """Sample photos and uploads chosen in the sidebar, decoded safely; bad files are
    reported and skipped. Decoded uploads stay in the session (the uploader itself
    is empty again on another page), listed under "Uploaded images"."""
    st.sidebar.subheader("Images")
    names = st.sidebar.multiselect(
        "Sample photos", explain.sample_names(), default=DEFAULT_SAMPLES, key="samples"
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
        st.session_state["uploaded"] = list(dict.fromkeys([*st.session_state.get("uploaded", []), *fresh]))
    chosen_uploads = st.sidebar.multiselect("Uploaded images", list(uploaded), key="uploaded") if uploaded else []
    images = [NamedImage(n, explain.load_sample(n)) for n in names]
    images += [uploaded[n] for n in chosen_uploads if n in uploaded]
    return images + dataset_image_picker()


def class_picker(bundle: explain.ModelBundle) -> int | None:
    """The class to explain: None means each image's top-1 prediction."""
    st.sidebar.subheader("Class to explain")
    mode = st.sidebar.radio(
        "Class", ["Top-1 prediction of each image", "Choose a class"], key="class_mode", label_visibility="collapsed"
    )
    if mode == "Top-1 prediction of each image":
        return None
    labels = [f"{i}: {name}" for i, name in enumerate(bundle.class_names)]
    choice = st.sidebar.selectbox("Class (type to search)", labels, key="class_choice", index=0)
    return labels.index(choice)


def method_picker(bundle: explain.ModelBundle, default: Sequence[str] = DEFAULT_METHODS, key: str = "methods") -> dict[str, dict[str, Any]]:
    """Multiselect over the registry (methods the model cannot run are listed below it,
    disabled, with the reason) and, per chosen method, widgets for its registered
    parameters. Returns {method: params}."""
    reasons = {m.key: m.unavailable_reason(bundle) for m in explain.list_methods()}
    labels = {m.key: m.label for m in explain.list_methods() if reasons[m.key] is None}
    chosen = st.multiselect(
        "Methods", list(labels), default=[k for k in default if k in labels], format_func=labels.get, key=key
    )
    unavailable = [f"**{explain.get_method(k).label}**: {reason}" for k, reason in reasons.items() if reason is not None]
    if unavailable:
        st.caption("Not available for this model: " + " · ".join(unavailable))
    settings: dict[str, dict[str, Any]] = {}
    with_params = [explain.get_method(k) for k in chosen if explain.get_method(k).params]
    if with_params:
        with st.expander("Method parameters"):
            columns = st.columns(len(with_params))
            for column, method in zip(columns, with_params):
                with column:
                    st.markdown(f"**{method.label}**")
                    settings[method.key] = {p.name: param_widget(method.key, p) for p in method.params}
    return {k: settings.get(k, {}) for k in chosen}


def param_widget(method_key: str, param: explain.Param) -> Any:
    key = f"param:{method_key}:{param.name}"
    if param.choices:
        return st.selectbox(param.label, param.choices, index=param.choices.index(param.default), key=key, help=param.help or None)
    if isinstance(param.default, int):
        return st.number_input(param.label, int(param.min), int(param.max), int(param.default), int(param.step or 1), key=key, help=param.help or None)
    return st.slider(param.label, float(param.min), float(param.max), float(param.default), float(param.step or 0.01), key=key, help=param.help or None)


@dataclass(frozen=True)
class PreparedImages:
    """Selected images as the model sees them: batch, display crops, digests, predictions."""

    names: list[str]
    batch: torch.Tensor
    display: np.ndarray
    digests: list[str]
    top5: list[list[tuple[int, str, float]]]


def prepare(bundle: explain.ModelBundle, images: Sequence[NamedImage]) -> PreparedImages:
    batch = bundle.preprocess_batch([im.image for im in images])
    return PreparedImages(
        names=[im.name for im in images],
        batch=batch,
        display=bundle.to_display(batch),
        digests=[im.digest for im in images],
        top5=bundle.top_k(batch, 5),
    )


def compute_maps(
    bundle: explain.ModelBundle, prepared: PreparedImages, methods: dict[str, dict[str, Any]], target: int | None
) -> dict[str, np.ndarray]:
    """Maps per method through the shared cache, with one progress bar for the lot.
    A method that fails is reported and left out; the others still show."""
    cache = shared_cache()
    results: dict[str, np.ndarray] = {}
    bar = st.progress(0.0, text="Computing attributions...")
    total = len(methods) or 1
    for i, (key, params) in enumerate(methods.items()):
        label = explain.get_method(key).label

        def report(done: int, count: int, i: int = i, label: str = label) -> None:
            bar.progress(min(1.0, (i + done / max(count, 1)) / total), text=f"{label}: {done}/{count} images")

        try:
            results[key] = explain.cached_attribute(
                cache, bundle, prepared.batch, prepared.digests, key, target, progress=report, **params
            )
        except (ValueError, RuntimeError) as exc:
            st.error(f"{label} failed: {exc}")
    bar.empty()
    return results


def maps_for_selection(
    bundle: explain.ModelBundle, images: Sequence[NamedImage], methods: dict[str, dict[str, Any]], target: int | None
) -> tuple[PreparedImages, dict[str, np.ndarray]]:
    """The selected images prepared and their maps for the chosen methods (through the
    shared cache); stops the page with a hint when no method is chosen or none ran."""
    if not methods:
        st.info("Choose at least one method.")
        st.stop()
    prepared = prepare(bundle, images)
    maps = compute_maps(bundle, prepared, methods, target)
    if not maps:
        st.stop()
    return prepared, maps


def page_setup() -> tuple[explain.ModelBundle, list[NamedImage], int | None]:
    """Sidebar shared by the pages: model info, images, class. Stops the page with a
    message when no image is selected."""
    leave_legacy_pages_mode()
    bundle = current_bundle()
    model_sidebar(bundle)
    images = image_picker()
    target = class_picker(bundle)
    if not images:
        st.info("Select a sample photo or upload an image in the sidebar to begin.")
        st.stop()
    return bundle, images, target


def current_dataset() -> ImageDataset | None:
    """The dataset chosen on the Model & data page, or None."""
    return st.session_state.get(DATASET_KEY)


def set_dataset(dataset: ImageDataset | None) -> None:
    st.session_state[DATASET_KEY] = dataset


def dataset_image_picker() -> list[NamedImage]:
    """Sidebar multiselect over the session's dataset (first few preselected)."""
    dataset = current_dataset()
    if dataset is None or not len(dataset):
        return []
    labels = {image.name: label for image, label in zip(dataset.images, dataset.labels)}
    by_name = {image.name: image for image in dataset.images}
    chosen = st.sidebar.multiselect(
        f"From dataset {dataset.name}",
        list(by_name),
        default=list(by_name)[:DATASET_DEFAULT_PICKS],
        format_func=lambda n: f"{n} [{labels[n]}]" if labels[n] is not None else n,
        key=f"dataset_picks:{dataset.id}",
    )
    return [by_name[n] for n in chosen]
