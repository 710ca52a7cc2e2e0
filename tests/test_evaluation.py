"""Dataset-scale evaluation (issue 11) on the bundled small CNN trained here for 1, 2 and 3
epochs on the MNIST subset: the same rows from the local and the Ray executor, a killed
run resumed without recomputing finished chunks, results pandas reads, memory flat in
the number of images, the Benchmark page and the report CLI's benchmark section, and a
sanity-check metric of issue 13 in the batch rows."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from explain.analyses import run_directly
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
from explain.evaluation import executors
from explain.evaluation.cli import add_commands, evaluation_from_args
from explain.evaluation.cli import main as explain_main
from explain.methods.registry import MethodSpec
from explain.metrics import pic
from tests.patience import generous
from reports import build_section

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
METHODS = ("saliency", "gradcam")
METRICS = (("deletion_insertion", {"steps": 8}), ("sic_aic", {}))
KEY = ["model_index", "image_index", "method"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    """small_cnn-e1.pt, -e2.pt, -e3.pt: the README's worked example (about 15 s)."""
    folder = tmp_path_factory.mktemp("ckpts")
    assert explain_main(["train-small-cnn", "--epochs", "1,2,3", "--out", str(folder), "--threads", "1"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["small_cnn-e1.pt", "small_cnn-e2.pt", "small_cnn-e3.pt"]
    return folder


def settings(checkpoints: Path, out: Path, *, images: int = 16, chunk: int = 8, methods=METHODS, metrics=METRICS,
             save_maps: bool = False, data: str = "mnist", weights: str = "*.pt") -> Evaluation:
    models = model_sources(weights=[str(checkpoints / weights)], arch="small_cnn")
    return Evaluation.of(
        models,
        DataSource.of(data, images),
        tuple(MethodSpec.of(m) for m in methods),
        tuple(MetricChoice.of(k, p) for k, p in metrics),
        chunk_size=chunk,
        save_maps=save_maps,
        out=out,
    )


LOCAL = EvaluationInputs("local", ExecutionOptions(device="cpu", threads=1))


@pytest.fixture(scope="module")
def results(checkpoints, tmp_path_factory) -> EvaluationResult:
    """Three checkpoints x 16 held-out images x 2 methods, deletion/insertion and SIC/AIC, maps kept."""
    out = tmp_path_factory.mktemp("results") / "three-checkpoints"
    result = run_directly(settings(checkpoints, out, save_maps=True), LOCAL)
    assert result.complete
    return result


# ---------------------------------------------------------------------- pandas reads it
def test_pandas_reads_rows_curves_and_manifest(results):
    rows = pd.read_parquet(results.root)
    assert len(rows) == 3 * 16 * 2 and not rows.duplicated(KEY).any()
    assert list(rows["model"].unique()) == ["small_cnn-e1.pt", "small_cnn-e2.pt", "small_cnn-e3.pt"]
    assert set(rows["method"]) == set(METHODS)
    assert rows[["auc_deletion", "auc_insertion"]].apply(lambda c: c.between(0, 1)).all().all()
    for column in ("auc_sic", "auc_aic"):
        # SIC/AIC skips an image as the PAIR reference does, e.g. when interpolating a digit from its seed
        # pixels gives a picture WebP encodes larger than the digit: NaN, with the reason in `skipped`.
        scored = rows[column].dropna()
        assert len(scored) >= len(rows) // 4 and scored.between(0, 1).all(), column
        assert rows[column].isna().eq(rows["skipped"].str.contains(column[4:] + ":")).all()
    assert rows["correct"].eq(rows["label"].astype(int) == rows["prediction"]).all()
    assert rows["probability"].between(0, 1).all()
    # The later checkpoints are better classifiers on these images.
    accuracy = rows.groupby("model_index")["correct"].mean()
    assert accuracy[2] > accuracy[0]

    curves = pd.read_parquet(results.root / "_curves")
    scored = rows.melt(id_vars=KEY, value_vars=["auc_deletion", "auc_insertion", "auc_sic", "auc_aic"]).dropna()
    assert len(curves) == len(scored) and not curves.duplicated(KEY + ["score"]).any()
    deletion = curves[curves["score"] == "deletion"]
    assert deletion["x"].map(len).eq(9).all() and deletion["y"].map(len).eq(9).all()  # steps 8: 9 points

    manifest = json.loads((results.root / "_manifest.json").read_text())
    assert manifest["state"] == "complete" and manifest["images"] == 16 and manifest["chunks"] == 2
    assert [m["label"] for m in manifest["models"]] == list(rows["model"].unique())
    assert {"torch", "pyarrow", "pandas", "ray"} <= set(manifest["versions"])
    assert manifest["runs"][-1]["images_computed"] == 48 and manifest["runs"][-1]["seconds"] > 0
    assert sorted(os.listdir(results.root / "_maps")) == [
        f"maps-m{m:04d}-c{c:06d}.npz" for m in range(3) for c in range(2)
    ]


# ---------------------------------------------------------------------- executors
RAY_STARTS = 3  # Ray gives a starting node a fixed 30 s; a loaded machine may need another try


def start_local_ray(ray, num_cpus: int) -> None:  # type: ignore[no-untyped-def]
    """`ray.init` a local node, starting again when the node timed out during start-up."""
    for attempt in range(RAY_STARTS):
        try:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR")
            return
        except Exception as exc:  # Ray raises a bare Exception for a start-up timeout
            ray.shutdown()
            if "timed out during startup" not in str(exc) or attempt == RAY_STARTS - 1:
                raise


@pytest.mark.ray
@pytest.mark.slow
def test_local_and_ray_executors_give_identical_rows(checkpoints, results, tmp_path):
    import ray  # in requirements.txt: a missing or broken Ray fails here, it is never skipped

    analysis = settings(checkpoints, tmp_path / "ray", save_maps=True)
    start_local_ray(ray, num_cpus=2)
    try:
        got = run_directly(analysis, EvaluationInputs("ray", ExecutionOptions(device="cpu", threads=1)))
    finally:
        ray.shutdown()
    assert got.complete
    run = got.manifest["runs"][-1]
    assert run["executor"] == "ray" and run["workers"] == 2 and run["threads"] == 1
    pd.testing.assert_frame_equal(got.store.rows(), results.store.rows(), check_exact=True)
    pd.testing.assert_frame_equal(_sorted_curves(got), _sorted_curves(results), check_exact=True)
    for m in range(3):
        for c in range(2):
            ours, theirs = got.store.chunk_maps(m, c), results.store.chunk_maps(m, c)
            assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)


def _sorted_curves(result: EvaluationResult) -> pd.DataFrame:
    curves = result.store.curves().sort_values(KEY + ["score"], kind="stable").reset_index(drop=True)
    return curves.assign(x=curves["x"].map(list), y=curves["y"].map(list))


# ---------------------------------------------------------------------- killed and resumed
def _cli_args(checkpoints: Path, out: Path) -> list[str]:
    return [
        "evaluate",
        "--weights",
        str(checkpoints / "*.pt"),
        "--arch",
        "small_cnn",
        "--data",
        "mnist",
        "--max-images",
        "8",
        "--chunk-size",
        "2",
        "--methods",
        ",".join(METHODS),
        "--metrics",
        "deletion_insertion,sic_aic",
        "--param",
        "deletion_insertion.steps=8",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
    ]


def _cli_settings(argv: list[str]) -> Evaluation:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    return evaluation_from_args(parser.parse_args(argv))


# Runs the CLI and SIGKILLs itself just before it writes the rows part of chunk KILL_AT + 1
# (its curves part already written): a hard kill in the middle of a chunk.
KILLED_RUN = """
import os, signal, sys
from explain.evaluation import store
from explain.evaluation.cli import main
written = 0
plain = store.atomic_write
def write(path, data):
    global written
    if path.name.startswith("rows-"):
        if written == int(os.environ["KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)
        written += 1
    plain(path, data)
store.atomic_write = write
sys.exit(main(sys.argv[1:]))
"""


_LOAD, _EVALUATE = executors.load_bundle, executors.evaluate_chunk


class ModelCalls:
    """Images through the first layer of every model the executor loads, per (model, chunk)."""

    def __init__(self, monkeypatch) -> None:
        self.images: Counter = Counter()
        self.current: tuple[int, int] | None = None
        load, evaluate = _LOAD, _EVALUATE

        def counting_load(*args, **kwargs):
            bundle = load(*args, **kwargs)
            bundle.model.features[0].register_forward_hook(lambda module, x, y: self.count(x[0].shape[0]))
            return bundle

        def tracking_evaluate(settings, bundle, model_index, path, chunk, *rest, **kwargs):
            self.current = (model_index, chunk)
            try:
                return evaluate(settings, bundle, model_index, path, chunk, *rest, **kwargs)
            finally:
                self.current = None

        # SIC/AIC keeps the last few batches' fully blurred images per process: start without them.
        monkeypatch.setattr(pic, "_REFERENCES", type(pic._REFERENCES)())
        monkeypatch.setattr(executors, "load_bundle", counting_load)
        monkeypatch.setattr(executors, "evaluate_chunk", tracking_evaluate)

    def count(self, n: int) -> None:
        assert self.current is not None, "a model pass outside any chunk"
        self.images[self.current] += n


@pytest.mark.slow
def test_a_killed_run_resumes_without_recomputing_finished_chunks(checkpoints, tmp_path, monkeypatch):
    kill_at = 5  # of 3 models x 4 chunks
    killed = tmp_path / "killed"
    env = {**os.environ, "KILL_AT": str(kill_at), "PYTHONPATH": str(ROOT)}
    process = subprocess.run([sys.executable, "-c", KILLED_RUN, *_cli_args(checkpoints, killed)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=generous(30))
    assert process.returncode == -9, process.stderr[-2000:]

    # The interrupted store is consistent: whole parts only, readable by pandas, the manifest says "running".
    store = ResultsDir(killed)
    done = store.done()
    assert len(done) == kill_at and done == {(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)}
    partial = pd.read_parquet(killed)
    assert len(partial) == kill_at * 2 * 2 and not partial.duplicated(KEY).any()
    assert len(pd.read_parquet(killed / "_curves")) > 0
    assert store.manifest()["state"] == "running"
    opened = EvaluationResult.open(killed)
    assert not opened.complete and opened.done_chunks == kill_at and opened.accuracy()["images"].tolist() == [8, 2]

    # A full run of the same settings elsewhere: what every chunk costs in model passes.
    reference_calls = ModelCalls(monkeypatch)
    reference = run_directly(_cli_settings(_cli_args(checkpoints, tmp_path / "reference")), LOCAL)
    per_chunk = dict(reference_calls.images)
    assert set(per_chunk) == {(m, c) for m in range(3) for c in range(4)} and all(per_chunk.values())

    # The rerun computes exactly the chunks without a rows part, each at its full cost once.
    calls = ModelCalls(monkeypatch)
    resumed = run_directly(_cli_settings(_cli_args(checkpoints, killed)), LOCAL)
    assert set(calls.images) == set(per_chunk) - done
    assert calls.images == Counter({chunk: n for chunk, n in per_chunk.items() if chunk not in done})
    assert resumed.complete and resumed.manifest["runs"][-1]["chunks_reused"] == kill_at
    rows = resumed.store.rows()
    assert len(rows) == 3 * 8 * 2 and not rows.duplicated(KEY).any()
    pd.testing.assert_frame_equal(rows, reference.store.rows(), check_exact=True)
    assert not resumed.store.curves().duplicated(KEY + ["score"]).any()

    # A third run finds everything done and runs no model at all.
    idle = ModelCalls(monkeypatch)
    run_directly(_cli_settings(_cli_args(checkpoints, killed)), LOCAL)
    assert not idle.images


# ---------------------------------------------------------------------- memory
MEMORY_RUN = """
import gc, json, sys, weakref
from explain.evaluation import store
from explain.analyses import run_directly
from explain.evaluation import DataSource, Evaluation, EvaluationInputs, ExecutionOptions, MetricChoice, model_sources
from explain.jobs import JobContext
from explain.methods.registry import MethodSpec

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

checkpoint, out = sys.argv[1:3]
analysis = Evaluation.of(model_sources(weights=[checkpoint], arch="small_cnn"), DataSource.of("mnist-all", 2000),
                         (MethodSpec.of("saliency"),), (MetricChoice.of("deletion_insertion", {"steps": 4}),),
                         chunk_size=100, save_maps=True, out=out)
chunks = []  # weak references to every chunk's result once written: none should stay alive
write = store.ResultsDir.write_chunk
store.ResultsDir.write_chunk = lambda self, result: (chunks.append(weakref.ref(result)), write(self, result))[1]
seen = {}
for result in analysis.run(EvaluationInputs("local", ExecutionOptions(device="cpu", threads=1)), JobContext.detached()):
    seen[result.done_chunks * 100] = rss_kib()
gc.collect()
print(json.dumps({"rss": seen, "chunks": len(chunks), "alive": sum(ref() is not None for ref in chunks)}))
"""


@pytest.mark.slow
def test_resident_memory_stays_flat_in_the_number_of_images(checkpoints, tmp_path):
    """RSS after 2,000 images within 10 % of RSS after 200 (a fresh process; about 20 s)."""
    process = subprocess.run(
        [sys.executable, "-c", MEMORY_RUN, str(checkpoints / "small_cnn-e3.pt"), str(tmp_path / "memory")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=generous(60),
    )
    assert process.returncode == 0, process.stderr[-2000:]
    found = json.loads(process.stdout.strip().splitlines()[-1])
    rss = {int(k): v for k, v in found["rss"].items()}
    assert max(rss) == 2000 and len(pd.read_parquet(tmp_path / "memory")) == 2000
    assert rss[2000] <= 1.10 * rss[200], (
        f"RSS {rss[200] / 1024:.0f} MiB after 200 images, {rss[2000] / 1024:.0f} MiB after 2,000"
    )
    # Most of that RSS is torch, the data set and the allocator's pools, so a few MiB of
    # results kept by mistake would not show in it: no chunk's result outlives its writing.
    assert found["chunks"] == 20 and found["alive"] == 0


# ---------------------------------------------------------------------- issue 13's metrics in batch rows
def test_sanity_check_metrics_flow_into_batch_rows(checkpoints, tmp_path):
    analysis = settings(checkpoints, tmp_path / "sanity", images=8, weights="small_cnn-e3.pt",
                        metrics=(("agreement", {}), ("random_logit", {})))
    result = run_directly(analysis, LOCAL)
    rows = result.store.rows()
    columns = [s.column for s in result.scores]
    assert columns == ["auc_agreement_spearman", "auc_agreement_topk", "auc_random_logit_spearman_abs",
                       "auc_random_logit_spearman", "auc_random_logit_ssim", "auc_random_logit_hog"]
    assert len(rows) == 8 * 2 and np.isfinite(rows[columns].to_numpy()).all()
    # Agreement compares the two methods: each method's score is the same pair's.
    agreement = rows.pivot(index="image_index", columns="method", values="auc_agreement_spearman")
    np.testing.assert_allclose(agreement["saliency"], agreement["gradcam"], rtol=1e-12, atol=1e-15)
    assert rows["auc_agreement_topk"].between(0, 1).all()  # an intersection over union
    assert (
        rows[["auc_random_logit_spearman_abs", "auc_random_logit_spearman"]]
        .apply(lambda c: c.between(-1, 1))
        .all()
        .all()
    )
    board = result.leaderboard_display(result.score("agreement_spearman"), 0)
    assert list(board.index) == ["Saliency", "Grad-CAM"] or list(board.index) == ["Grad-CAM", "Saliency"]


# ---------------------------------------------------------------------- Benchmark page and report CLI
def test_benchmark_page_shows_a_three_checkpoint_run_and_adds_it_to_the_report(results, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))
    run = runs_dir() / "three-checkpoints"
    shutil.copytree(results.root, run)
    at = AppTest.from_file(str(APP), default_timeout=generous(12))
    at.switch_page("pages/benchmark.py")
    at.run()
    assert not at.exception
    at.selectbox(key="benchmark:own").set_value(str(run)).run()
    [b for b in at.button if b.label == "Open"][0].click().run()
    assert not at.exception and not at.error

    accuracy, leaderboard = (frame.value for frame in at.dataframe)
    assert list(accuracy.index) == ["small_cnn-e1.pt", "small_cnn-e2.pt", "small_cnn-e3.pt"]
    assert accuracy["images"].tolist() == [16, 16, 16] and accuracy["accuracy"].iloc[2] > accuracy["accuracy"].iloc[0]
    assert sorted(leaderboard.index) == ["Grad-CAM", "Saliency"] and leaderboard["rank"].tolist() == [1, 2]
    assert {"Deletion AUC (↓)", "Insertion AUC (↑)", "SIC AUC (↑)", "AIC AUC (↑)", "images"} <= set(leaderboard.columns)
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # score against checkpoint beside accuracy; per-class breakdown
    checkpoint_chart, class_chart = (json.loads(c.proto.spec) for c in charts)
    assert {"Saliency", "Grad-CAM"} <= {t.get("name") for t in checkpoint_chart["data"]}
    assert any(len(t.get("x", [])) == 3 for t in checkpoint_chart["data"])  # three checkpoints along x
    classes = results.rows["label"].nunique()
    assert classes >= 5 and any(len(t.get("y", [])) == classes for t in class_chart["data"])  # one row per digit seen
    subheaders = [h.value.replace("\\", "") for h in at.subheader]  # names are shown as escaped plain text
    assert any(h.startswith("Worst images by Deletion AUC on small_cnn-e3.pt") for h in subheaders)
    worst = at.get("image")
    assert len(worst) == 2 and all(len(w.proto.imgs) == 4 for w in worst)  # per method its 4 worst, with maps

    [b for b in at.button if b.label == "Add to report"][0].click().run()
    assert not at.exception
    sections = at.session_state["report_draft"].sections
    assert [s.section.title for s in sections] == ["Benchmark across checkpoints"]
    page_section = sections[0].section
    cli_section = build_section(EvaluationResult.open(run))
    assert page_section.description == cli_section.description
    assert [type(b).__name__ for b in page_section.blocks] == [type(b).__name__ for b in cli_section.blocks]


def test_report_cli_builds_the_benchmark_section(results, tmp_path, capsys):
    from reports import cli

    out = tmp_path / "bench.html"
    assert (
        cli.main(["build", "--sections", "benchmark", "--results", str(results.root), "--out", str(out), "--quiet"])
        == 0
    )
    html = out.read_text()
    assert "Benchmark across checkpoints" in html and "Leaderboard of small_cnn-e3.pt" in html
    assert all(name in html for name in ("small_cnn-e1.pt", "small_cnn-e2.pt", "Grad-CAM", "Saliency"))
    assert html.count("worst 1") >= 1
    assert cli.main(["build", "--sections", "benchmark", "--out", str(out)]) == 2
    assert "--results" in capsys.readouterr().err
