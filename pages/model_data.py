"""Model & data: choose the model (offline default, torchvision zoo, timm, Hugging Face, or an
upload: state dict, ONNX, TorchScript), all loaded through the model-source registry; its
preprocessing and CAM layer, and the images (zip of class folders, single uploads, or
an allowed server folder). Everything chosen here holds for this session only."""

import logging
import re

import streamlit as st

import explain
from explain.models.zoo import zoo_weights_available
from explain.models import (
    CustomModelError,
    Preprocessing,
    UploadedModel,
    architecture_names,
    cam_layer_options,
    load_uploaded_model,
    parse_class_names,
    parse_floats,
    preprocessing_of,
    with_settings,
)
from explain.data.datasets import (
    DatasetError, DatasetLimits, allowed_folder, dataset_from_folder, dataset_from_uploads, dataset_from_zip,
)
from explain.plots.masks import mask_overlay
from pages.ui import access, model, selection, session

KIND_LABELS = {"state_dict": "State dict + torchvision architecture", "onnx": "ONNX", "torchscript": "TorchScript"}
SOURCES = ["Offline default", "torchvision zoo", "timm", "Hugging Face", "Upload a model"]
log = logging.getLogger(__name__)

session.start_page()
st.title("Model & data")
config = access.operator_config()
may_upload = access.upload_gate(config)  # shows the password box / login button when locked


def progress_bar(text: str):
    bar = st.progress(0.0, text=text)
    return bar, lambda done, total: bar.progress(done / max(total, 1), text=f"{text} {done}/{total}")


@st.cache_data(show_spinner=False)
def timm_model_names() -> list[str]:
    import timm

    return sorted(timm.list_models())


def loaded(bundle: explain.ModelBundle) -> None:
    st.success(f"Loaded {bundle.name}: {bundle.num_classes} classes, {bundle.num_parameters / 1e6:.2f} M parameters. "
               f"It replaces the model for this session only.")


def load_upload(file, kind: str, architecture: str | None, num_classes: int, names_file) -> None:
    """An uploaded weights / model file through the model-source registry, with one message on failure."""
    try:
        if file is None:
            raise CustomModelError("Choose a model file first.")
        names = parse_class_names(names_file.getvalue(), names_file.name) if names_file is not None else None
        upload = UploadedModel(file.name, file.getvalue(), kind, architecture, num_classes or None,
                               tuple(names) if names is not None else None)
        with st.spinner(f"Loading {file.name}..."):
            bundle = load_uploaded_model(upload, allow_torchscript=config.allow_torchscript,
                                         max_bytes=config.max_model_mb * 2**20)
    except (CustomModelError, explain.ModelUnavailableError) as exc:
        st.error(str(exc))
    else:
        model.use_custom_model(bundle)
        loaded(bundle)


def load_named(reference: str) -> None:
    """A model shared by every session (a zoo, timm or hub name), downloaded where allowed."""
    try:
        with st.spinner(f"Loading {reference}..."):
            bundle = model.shared_bundle(reference, config.allow_downloads)
    except (CustomModelError, explain.ModelUnavailableError) as exc:
        log.warning("%s %s", exc, getattr(exc, "operator_hint", ""))
        st.error(str(exc))
    else:
        model.use_named_model(reference, config.allow_downloads)
        loaded(bundle)


def load_hugging_face(text: str) -> None:
    """A folder inside the operator's data roots (for sessions that may upload), else a hub id."""
    text = text.strip()
    if not text:
        st.error("Enter a hub id or a folder first.")
        return
    hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", text) and not any((root / text).exists() for root in config.data_roots)
    if not (config.allow_downloads and hub_id):
        try:
            if not may_upload:
                raise DatasetError("Reading server folders is locked: unlock it at the top of this page.")
            folder = allowed_folder(text, config.data_roots)
            with st.spinner(f"Loading {folder.name}..."):
                bundle = explain.load_model(f"hf:{folder}", max_bytes=config.max_model_mb * 2**20)
        except (DatasetError, CustomModelError, explain.ModelUnavailableError) as exc:
            st.error(f"{exc}" + (" Hub ids need downloads, which are off on this instance." if hub_id else ""))
        else:
            model.use_custom_model(bundle)
            loaded(bundle)
        return
    load_named(f"hf:{text}")


# ----------------------------------------------------------------------------- model
st.header("Model")
in_use = st.empty()  # filled after this run's loading, so it names the model just loaded
source = st.radio("Model source", SOURCES, key="byom_source", horizontal=True)

if source == "Offline default":
    st.caption(f"{explain.DEFAULT_MODEL}: ImageNet weights shipped with the app, works offline.")
    if st.button("Use the offline default", key="byom_use_default"):
        st.session_state["model_name"] = explain.DEFAULT_MODEL
        model.use_custom_model(None)
        st.success(f"Using {explain.DEFAULT_MODEL}.")
elif source == "torchvision zoo":
    names = [n for n in explain.list_models() if n != explain.DEFAULT_MODEL]
    installed = names if config.allow_downloads else [n for n in names if zoo_weights_available(n)]
    st.caption("Weights missing on this server are downloaded on first use." if config.allow_downloads else
               f"{len(installed)} of {len(names)} zoo models have their weights installed on this server"
               + (": marked ✓." if installed else "; the operator can add weight files (see the README, Hosting)."))
    zoo_name = st.selectbox(
        "torchvision model", names, index=names.index(installed[0] if installed else "resnet50"), key="byom_zoo_name",
        format_func=lambda n: f"✓ {n}" if n in installed else f"{n} (weights not installed)",
    )
    if st.button("Use this model", key="byom_use_zoo"):
        try:
            model.shared_bundle(zoo_name, config.allow_downloads)
        except explain.ModelUnavailableError as exc:
            log.warning("%s %s", exc, exc.operator_hint)  # where the file goes: for the operator's log only
            st.error(f"{exc} Ask the operator of this instance to install them.")
        else:
            model.use_named_model(zoo_name, config.allow_downloads)
            st.success(f"Using {zoo_name}.")
elif source == "timm":
    timm_names = timm_model_names()
    timm_name = st.selectbox("timm architecture", timm_names, index=timm_names.index("convnext_tiny"),
                             key="byom_timm_name")
    if config.allow_downloads and st.button("Use timm's pretrained weights (download)", key="byom_timm_pretrained"):
        load_named(f"timm:{timm_name}")
    if not may_upload:
        st.caption("Uploading weights is locked: unlock it at the top of this page.")
    else:
        weights_file = st.file_uploader("Weights (.safetensors, or .pth read weights-only)",
                                        type=["safetensors", "pth", "pt", "bin"], key="byom_timm_weights",
                                        max_upload_size=config.max_model_mb)
        timm_classes = st.number_input("Number of classes (0: read from the file)", 0, 100_000, 0,
                                       key="byom_timm_classes")
        timm_names_file = st.file_uploader("Class names (optional: one per line, or JSON)", type=["txt", "json", "csv"],
                                           key="byom_timm_class_names")
        if st.button("Load timm model", key="byom_load_timm", type="primary"):
            load_upload(weights_file, "timm", timm_name, int(timm_classes), timm_names_file)
elif source == "Hugging Face":
    st.caption("An AutoModelForImageClassification checkpoint: config.json, model.safetensors and "
               "preprocessor_config.json (safetensors only; custom code is never run). "
               + ("A hub id (google/vit-base-patch16-224) is downloaded. " if config.allow_downloads else "")
               + (f"Server folders inside {', '.join(str(r) for r in config.data_roots)}."
                  if config.data_roots and may_upload else ""))
    hf_ref = st.text_input("Hub id or folder on the server", key="byom_hf_ref")
    if st.button("Load Hugging Face model", key="byom_load_hf", type="primary"):
        load_hugging_face(hf_ref)
elif not may_upload:
    st.caption("Uploading a model is locked: unlock it at the top of this page.")
else:
    kinds = ["state_dict", "onnx", "torchscript"] if config.allow_torchscript else ["state_dict", "onnx"]
    kind = st.radio("Model file", kinds, format_func=KIND_LABELS.get, key="byom_kind", horizontal=True)
    if not config.allow_torchscript:
        st.caption("TorchScript uploads are disabled on this instance (they can run arbitrary operators).")
    suffixes = {"state_dict": ["pt", "pth", "bin", "safetensors"], "onnx": ["onnx"]}.get(
        kind, ["pt", "pth", "ts", "torchscript", "zip"])
    model_file = st.file_uploader(
        "Model file", type=suffixes, key=f"byom_model_file:{kind}", max_upload_size=config.max_model_mb
    )
    if kind == "state_dict":
        columns = st.columns(2)
        arch_names = architecture_names()
        architecture = columns[0].selectbox(
            "Architecture", arch_names, index=arch_names.index("resnet18"), key="byom_arch"
        )
        num_classes = columns[1].number_input("Number of classes", 1, 100_000, 1000, key="byom_num_classes")
    else:
        architecture = None
        num_classes = st.number_input(
            "Number of classes (0: read from the model's output)", 0, 100_000, 0, key="byom_ts_classes"
        )
        st.caption("CAM and Grad-CAM need hooks, which do not run inside compiled TorchScript: gradient, "
                   "perturbation and Captum methods work; Guided Backprop and DeepLIFT see the compiled "
                   "ReLUs as opaque. Upload a state dict for CAM methods." if kind == "torchscript" else
                   "The graph is converted with onnx2torch and checked against onnxruntime before it is used.")
    names_file = st.file_uploader(
        "Class names (optional: one per line, or JSON)", type=["txt", "json", "csv"], key="byom_class_names"
    )
    if st.button("Load model", key="byom_load", type="primary"):
        load_upload(model_file, kind, architecture, int(num_classes), names_file)

# ----------------------------------------------------------------------------- preprocessing and CAM layer
base = model.base_bundle()
bundle = model.current_bundle()
in_use.caption(f"This session uses **{bundle.name}** ({bundle.weights}).")
st.subheader(f"Preprocessing and CAM layer of {bundle.name}")
suffix = base.model_id
with st.form(f"byom_settings:{suffix}", border=True):
    c1, c2, c3, c4 = st.columns(4)
    input_size = c1.number_input("Input size (crop)", 8, 1024, bundle.input_size, key=f"byom_input_size:{suffix}")
    resize_size = c2.number_input("Resize short side to", 8, 2048, bundle.resize_size, key=f"byom_resize:{suffix}")
    mean_text = c3.text_input("Mean (R, G, B)", ", ".join(f"{m:g}" for m in bundle.mean), key=f"byom_mean:{suffix}")
    std_text = c4.text_input("Std (R, G, B)", ", ".join(f"{s:g}" for s in bundle.std), key=f"byom_std:{suffix}")
    layers = cam_layer_options(base)
    if layers:
        layer = st.selectbox(
            "CAM layer (convolutional layers, last first; the first one feeds the pooling + linear head that CAM "
            "needs)",
            layers,
            index=layers.index(bundle.cam_layer) if bundle.cam_layer in layers else 0,
            key=f"byom_cam_layer:{suffix}",
        )
    else:
        layer = None
        st.caption("This model offers no CAM layer (TorchScript, or no convolution): CAM and Grad-CAM are unavailable.")
    applied = st.form_submit_button("Apply")
defaults = preprocessing_of(base)
st.caption(f"The model's defaults: input {defaults.input_size}, resize {defaults.resize_size}, "
           f"mean {defaults.mean}, std {defaults.std}, CAM layer {base.cam_layer}.")
if applied:
    try:
        preprocessing = Preprocessing(
            int(input_size), int(resize_size), parse_floats(mean_text, "Mean"), parse_floats(std_text, "Std")
        )
        new_bundle = with_settings(base, preprocessing, layer)
    except CustomModelError as exc:
        st.error(str(exc))
    else:
        named = (
            st.session_state.get(model.CUSTOM_BUNDLE_KEY) is None or st.session_state.get(model.CUSTOM_BASE_KEY) is None
        )
        model.use_custom_model(None if named and new_bundle is base else base, new_bundle)
        st.success("Settings applied for this session.")

# ----------------------------------------------------------------------------- data
st.header("Data")
if not may_upload:
    st.caption("Choosing your own data is locked: unlock it at the top of this page.")
else:
    limits = DatasetLimits(max_images=config.max_dataset_images, max_total_bytes=config.max_dataset_mb * 2**20)
    data_sources = ["Zip of an image folder", "Single images"] + (["Folder on the server"] if config.data_roots else [])
    data_source = st.radio("Images from", data_sources, key="byom_data_source", horizontal=True)
    loaded = None
    try:
        if data_source == "Zip of an image folder":
            st.caption("One sub-folder per class (cat/001.png, dog/002.jpg): folder names become the labels.")
            archive = st.file_uploader(
                "Zip archive", type=["zip"], key="byom_zip", max_upload_size=config.max_dataset_mb
            )
            if st.button("Load dataset", key="byom_load_zip"):
                if archive is None:
                    raise DatasetError("Choose a zip file first.")
                bar, report = progress_bar("Reading images...")
                loaded = dataset_from_zip(archive.getvalue(), archive.name, limits, report)
                bar.empty()
        elif data_source == "Single images":
            files = st.file_uploader(
                "Images",
                type=list(explain.data.images.UPLOAD_EXTENSIONS),
                accept_multiple_files=True,
                key="byom_images",
            )
            if st.button("Load images", key="byom_load_images"):
                if not files:
                    raise DatasetError("Choose at least one image first.")
                loaded = dataset_from_uploads([(f.name, f.getvalue()) for f in files], limits=limits)
        else:
            st.caption(f"Allowed folders: {', '.join(str(r) for r in config.data_roots)}")
            folder = st.text_input("Folder on the server", key="byom_folder")
            if st.button("Load folder", key="byom_load_folder"):
                bar, report = progress_bar("Reading images...")
                loaded = dataset_from_folder(folder, config.data_roots, limits, report)
                bar.empty()
    except DatasetError as exc:
        st.error(str(exc))
    if loaded is not None:
        selection.set_dataset(loaded)
        st.success(f"Loaded {len(loaded)} images from {loaded.name}; they are offered in the sidebar's image picker.")

dataset = selection.current_dataset()
if dataset is not None:
    with st.container(border=True):
        classes = dataset.classes
        counts = {c: dataset.labels.count(c) for c in classes}
        st.markdown(f"**Dataset** `{dataset.name}`: {len(dataset)} images, "
                    f"{len(classes)} classes" + (" (all labelled)" if dataset.is_labelled else ""))
        if classes:
            st.caption(", ".join(f"{c} ({n})" for c, n in counts.items()))
            matched = sum(t is not None for t in dataset.model_targets(bundle.class_names))
            st.caption(f"{matched} of {len(dataset)} labels name a class of {bundle.name} (by name or index).")
        if dataset.skipped:
            with st.expander(f"{len(dataset.skipped)} files left out"):
                st.text("\n".join(dataset.skipped))
        if may_upload:  # before the preview, which outlines the masks just loaded
            selection.ground_truth_uploader(dataset, limits)
        preview = st.columns(min(6, len(dataset)))
        truth = selection.current_truth()
        for column, image, label in zip(preview, dataset.images, dataset.labels, strict=False):  # the first few
            shown = image.image if truth is None else mask_overlay(image.image, truth.masks.get(image.name))
            column.image(shown, caption=f"{image.name}" + (f" [{label}]" if label else ""), width="stretch")
        if st.button("Remove the dataset", key="byom_remove_dataset"):
            selection.set_dataset(None)
            st.rerun()

# The shared sidebar, drawn last so that it shows what this run has just loaded.
model.model_sidebar(model.current_bundle())
selection.image_picker()
selection.class_picker(model.current_bundle())
