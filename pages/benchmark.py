"""Benchmark: many checkpoints evaluated over a dataset (`python -m explain evaluate` or a
run started here as a long job), compared: each score against the checkpoints beside
their accuracy, a leaderboard per model with bootstrap intervals, per-class means and
the worst images per method."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import streamlit as st

import explain
from explain.data.datasets import DatasetError, DatasetLimits, allowed_folder
from explain.evaluation import (
    DataSource,
    Evaluation,
    EvaluationInputs,
    EvaluationResult,
    ExecutionOptions,
    MetricChoice,
    ResultsDir,
    model_sources,
    runs_dir,
)
from explain.metrics import get_metric, list_metrics
from explain.methods.registry import MethodSpec
from explain.models import CustomModelError, architecture_names
from explain.models.small_cnn import ARCHITECTURE
from explain.models.zoo import zoo_weights_available
from pages.ui import access, jobs, report_builder, selection
from pages.ui.session import kept_widget, start_page
from reports import build_section
from pages.ui.text import plain

PAGE = "benchmark"
OPENED_KEY = "benchmark:opened"
OPEN, START = "Open results", "Start a run"
MNIST_TEST, MNIST_ALL, SERVER_DATA = (
    "MNIST subset: the 1,000 held-out images",
    "MNIST subset: all 5,000",
    "A labelled folder or zip on the server",
)
DECOY = "decoy-MNIST: known truth (the patch), with its own model"
CHECKPOINTS, NAMED = "Checkpoint files on the server", "Named models"

start_page()
st.title("Benchmark")
st.caption(
    "Explanations of several checkpoints over a whole dataset: every model × image × method, each metric's "
    "per-image AUC. Run `python -m explain evaluate` (also on a Ray cluster) and open its results here, or start "
    "a run on this server."
)
config = access.operator_config()
allowed = access.uploads_allowed()


@st.cache_resource(max_entries=8, show_spinner="Reading the results...")
def opened(root: str, signature: tuple) -> EvaluationResult:
    """The results in `root` as of `signature` (finished parts and the manifest's time):
    read once, shared by every session, read again when the run writes more."""
    return EvaluationResult.open(root)


def read(root: str | Path) -> EvaluationResult:
    store = ResultsDir(root)
    manifest = Path(root) / "_manifest.json"
    return opened(str(root), (len(store.done()), manifest.stat().st_mtime_ns if manifest.exists() else 0))


def own_runs() -> tuple[dict[str, str], int]:
    """The app's own runs that read back, newest first (folder -> its title and time as
    plain text), and how many were left out because they are damaged."""
    folder = runs_dir()
    found = [p for p in folder.iterdir() if (p / "_manifest.json").is_file()] if folder.is_dir() else []
    labels, damaged = {}, 0
    for path in sorted(found, key=lambda p: (p / "_manifest.json").stat().st_mtime, reverse=True):
        try:
            title = EvaluationResult.open(path).title
        except (ValueError, OSError):
            damaged += 1
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime((path / "_manifest.json").stat().st_mtime))
        labels[str(path)] = f"{title} · {when}"
    return labels, damaged


def show(root: str | Path, running: bool = False) -> None:
    """The dashboard of the results in `root`, or one message when they cannot be read."""
    try:
        result = read(root)
        dashboard(result, running)
    except (ValueError, KeyError, TypeError, OSError, pa.ArrowException) as exc:  # a damaged or hand-edited folder
        st.error(f"These results cannot be shown: {plain(exc)}. Nothing was changed; rerun the evaluation into "
                 "another results folder.")


def accuracy_table(result: EvaluationResult):
    """Per checkpoint: images, accuracy and its interval as one text column (narrow
    enough for the side column); the labelled count only when some image has no label."""
    table = result.accuracy().set_index("model")
    shown = table[["images", "accuracy"]].copy()
    shown["95 % interval"] = [f"[{lo:.3f}, {hi:.3f}]" if lo == lo else "—"
                              for lo, hi in zip(table["accuracy_low"], table["accuracy_high"], strict=True)]
    if (table["labelled"] != table["images"]).any():
        shown.insert(1, "labelled", table["labelled"])
    return shown


def dashboard(result: EvaluationResult, running: bool = False) -> None:
    """Everything the page shows of one result (partial while its run goes on)."""
    done, total = result.done_chunks, result.total_chunks
    state = "complete" if result.complete else f"{done} of {total} chunks so far"
    st.caption(f"**{plain(result.title)}** · {state}")  # names from the folder as plain text; no server path
    if result.rows.empty:
        st.info("No chunk is finished yet.")
        return
    scores = result.scores
    c1, c2, c3 = st.columns([2, 2, 1])
    score_key = c1.selectbox(
        "Score",
        [s.key for s in scores],
        format_func=lambda k: next(f"{s.name} ({s.direction})" for s in scores if s.key == k),
        key=f"{PAGE}:score",
    )
    score = result.score(score_key)
    model_index = c2.selectbox(
        "Checkpoint (leaderboard, classes, worst images)",
        range(len(result.models)),
        index=len(result.models) - 1,
        format_func=lambda i: result.models[i],
        key=f"{PAGE}:model",
    )
    worst_k = c3.number_input("Worst images", 1, 12, 4, key=f"{PAGE}:worst")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(result.checkpoint_figure(score), key=f"{PAGE}:checkpoints", config={"displaylogo": False})
    with right:
        st.markdown("**Checkpoints** (accuracy on the labelled images, bootstrap 95 % interval)")
        st.dataframe(accuracy_table(result), key=f"{PAGE}:accuracy")
    # Full width: one column per score, too many for the side column.
    st.markdown(f"**Leaderboard of {plain(result.models[model_index])}** (mean per-image AUC, bootstrap 95 % interval)")
    st.dataframe(result.leaderboard_display(score, model_index), key=f"{PAGE}:leaderboard")
    figure = result.class_figure(score, model_index)
    if figure is not None:
        st.plotly_chart(figure, key=f"{PAGE}:classes", config={"displaylogo": False})
    st.subheader(f"Worst images by {plain(score.name)} on {plain(result.models[model_index])}")
    worst = result.worst(score, model_index, int(worst_k))
    if not any(item["picture"] is not None for _, items in worst for item in items):
        st.caption("The run kept no maps (`--save-maps`); the worst images by name:")
    for label, items in worst:
        st.markdown(f"**{plain(label)}**")
        pictures = [item["picture"] for item in items if item["picture"] is not None]
        captions = [
            f"{item['image']} · label {item['label']} · pred {item['prediction_name']} · {item[score.column]:.3f}"
            for item in items
        ]
        if pictures:
            st.image(pictures, width=140, caption=captions)
        else:
            st.caption(" · ".join(plain(c) for c in captions))
    if result.manifest.get("notes_total"):
        with st.expander(f"{result.manifest['notes_total']} note(s): images or methods left out"):
            st.write(result.manifest.get("notes", []))
    if not running:
        report_builder.add_to_report(lambda: build_section(result, score.key, model_index, int(worst_k)), key=PAGE)


def open_results() -> None:
    labels, damaged = own_runs()
    c1, c2 = st.columns(2)
    own = c1.selectbox("Runs of this app", list(labels), format_func=labels.get, index=None,
                       placeholder="none yet" if not labels else "choose a run", key=f"{PAGE}:own")
    if damaged:
        c1.caption(f"{damaged} run folder(s) left out: their manifest is damaged.")
    folder = c2.text_input(
        "Or a results folder on the server",
        key=f"{PAGE}:folder",
        disabled=not (allowed and config.data_roots),
        help="inside the folders the operator allows (data_roots)",
    )
    if not (allowed and config.data_roots):
        c2.caption("Reading server folders needs the operator's data_roots and the upload access of this instance.")
    if st.button("Open", key=f"{PAGE}:open", icon=":material/folder_open:"):
        try:
            path = allowed_folder(folder, config.data_roots) if folder.strip() else (Path(own) if own else None)
            if path is None:
                raise DatasetError("Choose a run or enter a folder.")
            EvaluationResult.open(path)
        except (DatasetError, ValueError, OSError) as exc:
            st.error(plain(exc))
        else:
            st.session_state[OPENED_KEY] = str(path)
    root = st.session_state.get(OPENED_KEY)
    if root and Path(root, "_manifest.json").is_file():
        show(root)


def run_form() -> tuple[Evaluation | None, EvaluationInputs, bool]:
    with st.form(f"{PAGE}_settings", border=False):
        kind = kept_widget(
            st.radio, "Models", f"{PAGE}:model_kind", CHECKPOINTS, options=[CHECKPOINTS, NAMED], horizontal=True
        )
        c1, c2, c3 = st.columns([3, 2, 1])
        pattern = kept_widget(
            c1.text_input, "Checkpoint files (a glob inside an allowed server folder)", f"{PAGE}:glob", "ckpts/*.pt"
        )
        arch = kept_widget(c2.selectbox, "Architecture of the checkpoints", f"{PAGE}:arch", ARCHITECTURE,
                           options=[ARCHITECTURE, *architecture_names()])
        classes = kept_widget(c3.number_input, "Classes", f"{PAGE}:classes", 10, min_value=1, max_value=100_000)
        names = [
            explain.DEFAULT_MODEL,
            *[n for n in explain.list_models() if n != explain.DEFAULT_MODEL and zoo_weights_available(n)],
        ]
        named = kept_widget(
            st.multiselect, "Named models (in order)", f"{PAGE}:named", [explain.DEFAULT_MODEL], options=names
        )
        d1, d2, d3 = st.columns([2, 3, 1])
        data_kind = kept_widget(d1.radio, "Images", f"{PAGE}:data", MNIST_TEST,
                                options=[MNIST_TEST, MNIST_ALL, DECOY, SERVER_DATA])
        data_path = kept_widget(
            d2.text_input, "Labelled folder or .zip on the server (one sub-folder per class)", f"{PAGE}:data_path", ""
        )
        truth_path = kept_widget(d2.text_input, "Its ground truth on the server (optional): masks folder or .zip, or "
                                 "boxes .csv/.json", f"{PAGE}:truth_path", "")
        max_images = kept_widget(
            d3.number_input, "At most", f"{PAGE}:max_images", 200, min_value=1, max_value=config.max_dataset_images
        )
        methods = kept_widget(
            st.multiselect,
            "Methods",
            f"{PAGE}:methods",
            ["saliency", "gradcam"],
            options=[m.key for m in explain.list_methods()],
            format_func=lambda k: explain.get_method(k).label,
        )
        metrics = kept_widget(st.multiselect, "Metrics", f"{PAGE}:metrics", ["deletion_insertion", "sic_aic"],
                              options=[m.key for m in list_metrics()], format_func=lambda k: get_metric(k).label)
        params = {}
        with st.expander("Metric settings"):
            for key in metrics:
                st.markdown(f"**{get_metric(key).label}**")
                params[key] = selection.params_widgets(key, get_metric(key).params,
                                                       cost_of=selection.metric_cost(get_metric(key)))
        e1, e2, e3 = st.columns(3)
        class_mode = kept_widget(
            e1.radio,
            "Class explained",
            f"{PAGE}:class",
            "top1",
            options=["top1", "label"],
            format_func={"top1": "each image's top-1", "label": "each image's label"}.get,
            horizontal=True,
        )
        chunk = kept_widget(
            e2.number_input, "Images per stored chunk", f"{PAGE}:chunk", 32, min_value=1, max_value=1024
        )
        save_maps = kept_widget(e3.checkbox, "Keep the maps (worst images)", f"{PAGE}:save_maps", True)
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:", disabled=not allowed)
    limits = DatasetLimits(max_images=config.max_dataset_images, max_total_bytes=config.max_dataset_mb * 2**20)
    inputs = EvaluationInputs("local", ExecutionOptions(allow_torchscript=config.allow_torchscript,
                                                        max_model_bytes=config.max_model_mb * 2**20),
                              data_roots=tuple(config.data_roots), limits=limits)
    if not allowed:
        st.caption(
            "Runs read server files and compute for minutes: they are locked like uploads on this instance; unlock "
            "them on the Model & data page."
        )
    if not methods or not metrics:
        st.info("Choose at least one method and one metric.")
        return None, inputs, False
    try:
        if data_kind == DECOY:
            from explain.models.decoy import decoy_checkpoint

            if not allowed:
                raise DatasetError("decoy-MNIST trains its model on first use (about 30 s): runs are locked on this "
                                   "instance; unlock them on the Model & data page.")

            models = model_sources(weights=[str(decoy_checkpoint())], arch=ARCHITECTURE)  # trained once, cached
        elif kind == CHECKPOINTS:
            if not config.data_roots:
                raise DatasetError(
                    "Checkpoint files must lie in a server folder the operator allows (data_roots); none is set."
                )
            classes_given = None if arch == ARCHITECTURE else int(classes)
            # the pattern is checked against data_roots before anything is listed or hashed
            models = model_sources(weights=[pattern], arch=arch, num_classes=classes_given, roots=config.data_roots)
        else:
            models = model_sources(names=named)
        if data_kind == SERVER_DATA:
            if not config.data_roots or not data_path.strip():
                raise DatasetError(
                    "Enter a labelled folder or .zip inside the folders the operator allows (data_roots)."
                )
            path = Path(data_path.strip()).expanduser()
            path = path if path.is_absolute() else config.data_roots[0] / path
            truth = Path(truth_path.strip()).expanduser() if truth_path.strip() else None
            truth = truth if truth is None or truth.is_absolute() else config.data_roots[0] / truth
            data = DataSource.of(str(path), int(max_images), config.data_roots, limits,  # checked against data_roots
                                 truth=None if truth is None else str(truth))
        elif data_kind == DECOY:
            data = DataSource.of("decoy-mnist", int(max_images))
        else:
            data = DataSource.of("mnist-all" if data_kind == MNIST_ALL else "mnist", int(max_images))
        needs_truth = [get_metric(m).label for m in metrics if get_metric(m).needs_masks]
        if needs_truth and not data.has_truth:
            raise DatasetError(f"{', '.join(needs_truth)} need ground truth: choose decoy-MNIST, or a server "
                               "folder with its masks or boxes.")
        analysis = Evaluation.of(models, data, tuple(MethodSpec.of(m) for m in methods),
                                 tuple(MetricChoice.of(m, params.get(m, {})) for m in metrics),
                                 class_mode=class_mode, chunk_size=int(chunk), save_maps=bool(save_maps))
    except (DatasetError, CustomModelError, ValueError, OSError) as exc:
        st.error(plain(exc))
        return None, inputs, False
    return analysis, inputs, run and allowed


source = kept_widget(st.radio, "Results", f"{PAGE}:source", OPEN, options=[OPEN, START], horizontal=True,
                     label_visibility="collapsed")
if source == OPEN:
    open_results()
else:
    pending, inputs, run = run_form()
    if pending is not None:
        def draw(result, job) -> None:
            show(result.root, running=job.active)

        def placeholder() -> None:
            st.caption(f"Press Run to evaluate into a results folder of this app ({Path(pending.out).name}); a "
                       "rerun goes on from the chunks already written.")

        jobs.follow(PAGE, pending, inputs, run, draw, placeholder, stoppable=allowed)
