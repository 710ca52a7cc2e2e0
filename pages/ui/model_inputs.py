"""What the Compare models and Mistakes pages share: the models to run (named models or
checkpoint files on the server), the images (the sidebar's, or a labelled dataset:
the MNIST subset or a folder on the server), and the results directories they can
open instead. Widgets go inside the page's form; loading uses the evaluation's own
readers (`explain.evaluation.sources`), each model once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import streamlit as st

import explain
from explain.data.datasets import DatasetError, DatasetLimits, allowed_folder, label_indices
from explain.data.images import ImageLoadError, NamedImage
from explain.evaluation import DataSource, EvaluationResult, ModelSource, model_sources, runs_dir
from explain.evaluation.sources import load_bundle
from explain.models import architecture_names
from explain.models.small_cnn import ARCHITECTURE
from explain.models.zoo import zoo_weights_available

from . import access, selection
from .session import kept_widget

SIDEBAR, MNIST = "The sidebar's images", "MNIST subset (held-out images)"
SERVER_DATA = "A labelled folder on the server"


@dataclass(frozen=True)
class ChosenImages:
    """Images and their folder labels (None where unlabelled), in order."""

    images: tuple[NamedImage, ...]
    labels: tuple[str | None, ...]

    def targets(self, bundle: explain.ModelBundle) -> list[int | None]:
        """Each label as the model's class index (None where it names none)."""
        return label_indices(list(self.labels), bundle.class_names)


@st.cache_resource(max_entries=8, show_spinner="Loading the model...")
def source_bundle(source: ModelSource) -> explain.ModelBundle:
    """The model a source names, once per process (sources are fixed by path and content digest)."""
    config = access.operator_config()
    return load_bundle(source, source.read(config.max_model_mb * 2**20), allow_torchscript=config.allow_torchscript,
                       max_bytes=config.max_model_mb * 2**20)


@dataclass(frozen=True)
class ModelChoice:
    """The models the form names, in order: named models, then checkpoint files matching
    `pattern` (one architecture), then, with `session`, the Model & data page's model."""

    named: tuple[str, ...]
    pattern: str
    arch: str
    classes: int
    session: bool


def model_widgets(page: str, default_named: Sequence[str]) -> ModelChoice:
    """The models' widgets, inside a form."""
    names = [explain.DEFAULT_MODEL,
             *[n for n in explain.list_models() if n != explain.DEFAULT_MODEL and zoo_weights_available(n)]]
    named = kept_widget(st.multiselect, "Named models (in order)", f"{page}:named", list(default_named), options=names)
    c1, c2, c3 = st.columns([3, 2, 1])
    pattern = kept_widget(c1.text_input, "Then checkpoint files: a glob inside an allowed server folder "
                          "(natural order; empty for none)", f"{page}:glob", "")
    arch = kept_widget(c2.selectbox, "Architecture of the checkpoints", f"{page}:arch", ARCHITECTURE,
                       options=[ARCHITECTURE, *architecture_names()])
    classes = kept_widget(c3.number_input, "Classes", f"{page}:classes", 10, min_value=1, max_value=100_000)
    session = kept_widget(st.checkbox, "Then the Model & data page's model", f"{page}:session", False)
    return ModelChoice(tuple(named), pattern.strip(), arch, int(classes), bool(session))


def chosen_bundles(choice: ModelChoice) -> list[explain.ModelBundle]:
    """The models the form names, loaded (DatasetError / CustomModelError / ValueError when they cannot be)."""
    sources: list[ModelSource] = [ModelSource.named(n) for n in choice.named]
    if choice.pattern:
        config = access.operator_config()
        if not (config.data_roots and access.uploads_allowed(config)):
            raise DatasetError("Checkpoint files must lie in a server folder the operator allows (data_roots), and "
                               "reading them needs the upload access of this instance (Model & data page).")
        path = Path(choice.pattern).expanduser()
        files = path if path.is_absolute() else config.data_roots[0] / path
        found = model_sources(weights=[str(files)], arch=choice.arch,
                              num_classes=None if choice.arch == ARCHITECTURE else choice.classes)
        for source in found:
            allowed_folder(Path(source.name).parent, config.data_roots)
        sources += found
    bundles = [source_bundle(source) for source in sources]
    if choice.session:
        from .model import current_bundle

        bundles.append(current_bundle())
    return bundles


def image_widgets(page: str) -> tuple[str, str, int]:
    """(kind, folder, count): where the images come from, inside a form."""
    d1, d2, d3 = st.columns([2, 3, 1])
    kind = kept_widget(d1.radio, "Images", f"{page}:data", SIDEBAR, options=[SIDEBAR, MNIST, SERVER_DATA])
    folder = kept_widget(d2.text_input, "Labelled folder or .zip on the server (one sub-folder per class)",
                         f"{page}:data_path", "")
    count = kept_widget(d3.number_input, "At most", f"{page}:max_images", 24, min_value=1, max_value=500)
    return kind, folder, int(count)


def chosen_images(kind: str, folder: str, count: int, sidebar: Sequence[NamedImage]) -> ChosenImages:
    """The images the widgets name, decoded with the upload checks; labels from the dataset."""
    if kind == SIDEBAR:
        dataset = selection.current_dataset()
        labels = {} if dataset is None else dict(zip((im.digest for im in dataset.images), dataset.labels, strict=True))
        return ChosenImages(tuple(sidebar), tuple(labels.get(im.digest) for im in sidebar))
    config = access.operator_config()
    limits = DatasetLimits(max_images=config.max_dataset_images, max_total_bytes=config.max_dataset_mb * 2**20)
    if kind == MNIST:
        source = DataSource.of("mnist", count)
    else:
        if not access.uploads_allowed(config):
            raise DatasetError("Reading a server folder needs the upload access of this instance (Model & data page).")
        if not config.data_roots or not folder.strip():
            raise DatasetError("Enter a labelled folder or .zip inside the folders the operator allows (data_roots).")
        path = Path(folder.strip()).expanduser()
        source = DataSource.of(str(path if path.is_absolute() else config.data_roots[0] / path), count,
                               config.data_roots, limits)
    images, labels = [], []
    with source.open(config.data_roots if kind == SERVER_DATA else None, limits) as index:
        for raw in index.raw(range(len(index))):
            try:
                images.append(raw.decode())
                labels.append(raw.label)
            except ImageLoadError as exc:
                st.caption(f"skipped {raw.name}: {exc}")
    return ChosenImages(tuple(images), tuple(labels))


def run_title(folder: Path) -> str:
    """A run of this app as its title and the time of its manifest."""
    import time

    manifest = folder / "_manifest.json"
    try:
        title = EvaluationResult.open(folder).title
    except ValueError:
        title = folder.name
    return f"{title} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(manifest.stat().st_mtime))}"


def results_picker(page: str) -> EvaluationResult | None:
    """A results directory of an evaluation: one of the app's own runs or a folder inside
    the operator's data_roots; None until one is opened."""
    folder = runs_dir()
    runs = sorted((p for p in folder.iterdir() if (p / "_manifest.json").is_file()), key=lambda p: p.name) \
        if folder.is_dir() else []
    config = access.operator_config()
    c1, c2 = st.columns(2)
    titles = {str(p): run_title(p) for p in runs}  # titles and dates: visitors see no server path
    own = c1.selectbox("Runs of this app (Benchmark page)", list(titles), index=None, format_func=titles.get,
                       placeholder="none yet" if not runs else "choose a run", key=f"{page}:own")
    readable = bool(config.data_roots) and access.uploads_allowed(config)
    typed = c2.text_input("Or a results folder on the server", key=f"{page}:folder", disabled=not readable,
                          help="inside the folders the operator allows (data_roots); needs the upload access")
    opened_key = f"{page}:opened"
    if st.button("Open", key=f"{page}:open", icon=":material/folder_open:"):
        try:
            chosen = Path(own) if own else None
            path = allowed_folder(typed, config.data_roots) if typed.strip() and readable else chosen
            if path is None:
                raise DatasetError("Choose a run or enter a folder.")
            EvaluationResult.open(path)
        except (DatasetError, ValueError) as exc:
            st.error(str(exc))
        else:
            st.session_state[opened_key] = str(path)
    root = st.session_state.get(opened_key)
    if not root or not Path(root, "_manifest.json").is_file():
        return None
    return EvaluationResult.open(root)
