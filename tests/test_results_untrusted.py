"""Results folders as untrusted input (issue 24): a truncated part is recomputed on resume,
a part symlinked out of the folder is not read, an emptied or damaged manifest is refused
(never appended to), a manifest with `chunk_size: 0` or without scores is one message,
and the CLI says each of these in one line with exit status 2 (no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from explain.analyses import run_directly
from explain.evaluation import (
    DataSource,
    Evaluation,
    EvaluationInputs,
    EvaluationResult,
    ExecutionOptions,
    MetricChoice,
    ResultsDir,
    ResultsError,
    model_sources,
)
from explain.evaluation.store import manifest_problem
from explain.methods.registry import MethodSpec
from explain.models.small_cnn import SmallCNN, save_state_dict

ROOT = Path(__file__).resolve().parents[1]
LOCAL = EvaluationInputs("local", ExecutionOptions(device="cpu", threads=1))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """One small CNN with seeded random weights (no training: the folder's handling is under test)."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    save_state_dict(SmallCNN(), folder / "random.pt")
    return folder / "random.pt"


def settings(checkpoint: Path, out: Path, steps: int = 4) -> Evaluation:
    models = model_sources(weights=[str(checkpoint)], arch="small_cnn")
    return Evaluation.of(models, DataSource.of("mnist", 4), (MethodSpec.of("saliency"),),
                         (MetricChoice.of("deletion_insertion", {"steps": steps}),), chunk_size=2, out=out)


@pytest.fixture(scope="module")
def finished(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("results") / "run"
    assert run_directly(settings(checkpoint, out), LOCAL).complete
    return out


def copy_of(finished: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(finished, tmp_path / "copy"))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def cli_evaluate(checkpoint: Path, out: Path, steps: int = 4) -> subprocess.CompletedProcess:
    return cli("explain", "evaluate", "--weights", str(checkpoint), "--arch", "small_cnn", "--max-images", "4",
               "--methods", "saliency", "--metrics", "deletion_insertion",
               "--param", f"deletion_insertion.steps={steps}",
               "--chunk-size", "2", "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out), cwd=ROOT)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_truncated_rows_part_is_not_done_and_a_rerun_recomputes_it(checkpoint, finished, tmp_path):
    out = copy_of(finished, tmp_path)
    store = ResultsDir(out)
    reference = store.rows()
    part = store.rows_path(0, 1)
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    assert store.done() == {(0, 0)}
    assert len(store.rows()) == 2  # the readers skip it (no ArrowInvalid)
    resumed = run_directly(settings(checkpoint, out), LOCAL)
    assert resumed.complete and resumed.manifest["runs"][-1]["chunks_computed"] == 1
    pd.testing.assert_frame_equal(resumed.store.rows(), reference, check_exact=True)


def test_a_part_symlinked_out_of_the_folder_is_refused(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    outside = tmp_path / "elsewhere.parquet"
    store = ResultsDir(out)
    outside.write_bytes(store.rows_path(0, 1).read_bytes())
    store.rows_path(0, 1).unlink()
    store.rows_path(0, 1).symlink_to(outside)
    maps = store.maps_path(0, 0)
    maps.parent.mkdir(exist_ok=True)
    maps.symlink_to(outside)
    reads: list[str] = []
    real_open = open

    def watching_open(file, *args, **kwargs):
        reads.append(os.path.realpath(file) if isinstance(file, (str, os.PathLike)) else "")
        return real_open(file, *args, **kwargs)

    import builtins

    builtins.open = watching_open
    try:
        assert store.done() == {(0, 0)}
        assert set(store.rows()["image_index"]) == {0, 1}
        assert store.chunk_maps(0, 0) is None
    finally:
        builtins.open = real_open
    assert str(outside.resolve()) not in reads


@pytest.mark.slow
@pytest.mark.parametrize("content", ["[]", "", "{not json", '{"kind": "evaluation"}'])
def test_an_emptied_or_damaged_manifest_is_refused_never_appended_to(checkpoint, finished, tmp_path, content):
    out = copy_of(finished, tmp_path)
    (out / "_manifest.json").write_text(content)
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(ResultsError, match="no usable manifest"):
        run_directly(settings(checkpoint, out, steps=6), LOCAL)  # other settings
    assert sorted(p.name for p in out.rglob("*")) == before
    line = one_line_error(cli_evaluate(checkpoint, out, steps=6))
    assert "no usable manifest" in line and str(tmp_path) not in line
    assert sorted(p.name for p in out.rglob("*")) == before


def test_a_missing_manifest_beside_parts_is_refused(checkpoint, finished, tmp_path):
    out = copy_of(finished, tmp_path)
    (out / "_manifest.json").unlink()
    with pytest.raises(ResultsError, match="no usable manifest"):
        run_directly(settings(checkpoint, out), LOCAL)


@pytest.mark.parametrize("edit", [{"chunk_size": 0}, {"scores": []}, {"scores": None}, {"models": [{"label": 5}]},
                                  {"chunks": "3"}, {"key": "../x"}])
def test_a_hand_edited_manifest_is_one_message(finished, tmp_path, edit):
    out = copy_of(finished, tmp_path)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest_problem(manifest) is None
    manifest.update(edit)
    (out / "_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultsError, match="cannot be used") as caught:
        EvaluationResult.open(out)
    assert str(tmp_path) not in str(caught.value)


@pytest.mark.slow
def test_the_report_cli_refuses_a_damaged_folder_in_one_line(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    manifest = json.loads((out / "_manifest.json").read_text())
    manifest["chunk_size"] = 0
    (out / "_manifest.json").write_text(json.dumps(manifest))
    line = one_line_error(cli("reports", "build", "--sections", "benchmark", "--results", str(out), "--out",
                               str(tmp_path / "r.html"), cwd=ROOT))
    assert "chunk_size" in line


@pytest.mark.slow
def test_another_settings_run_into_the_same_folder_is_one_line(checkpoint, finished, tmp_path):
    out = copy_of(finished, tmp_path)
    line = one_line_error(cli_evaluate(checkpoint, out, steps=6))
    assert "another evaluation" in line


FULL_DISK = """
import errno, sys
from explain.evaluation import store
from explain.evaluation.cli import main
real = store.ResultsDir.write_chunk
def write(self, result):
    if result.chunk >= 1:
        raise OSError(errno.ENOSPC, "No space left on device")
    real(self, result)
store.ResultsDir.write_chunk = write
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_full_disk_during_evaluate_is_one_line_that_says_what_is_kept(checkpoint, tmp_path):
    out = tmp_path / "full"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    argv = ["evaluate", "--weights", str(checkpoint), "--arch", "small_cnn", "--max-images", "4", "--methods",
            "saliency", "--metrics", "deletion_insertion", "--param", "deletion_insertion.steps=4", "--chunk-size", "2",
            "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    line = one_line_error(proc)
    assert "No space left on device" in line and "1 chunk(s) finished before it are kept" in line and "rerun" in line
    assert ResultsDir(out).done() == {(0, 0)}
