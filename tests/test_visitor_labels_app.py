"""No server path reaches a visitor (issue 24): a results folder whose manifest names its
data and checkpoints by server paths (as older versions, other tools or a hand edit
write them) shows only their last parts on the Benchmark, Compare models and Mistakes
pages, in the run pickers' options as well as in the opened run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explain.evaluation import EvaluationResult
from explain.evaluation.results import without_paths

from .test_hardening2_app import texts
from .test_results_untrusted import checkpoint, finished  # noqa: F401  (fixtures)

assert checkpoint  # the fixture `finished` needs (pytest finds it in this module)

APP = str(Path(__file__).resolve().parents[1] / "app.py")
SECRET = "hiddenroot"  # a server folder's name that must never be shown
DATA = f"/srv/{SECRET}/datasets/cats"


def run_with_paths(finished: Path, runs: Path) -> Path:  # noqa: F811
    folder = Path(shutil.copytree(finished, runs / "with-paths"))
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["title"] = f"Evaluation · 1 model(s) × {DATA} × 1 method(s) × 1 metric(s)"
    manifest["data"]["label"] = DATA
    manifest["models"][0]["label"] = f"/srv/{SECRET}/checkpoints/epoch-9.pt"
    (folder / "_manifest.json").write_text(json.dumps(manifest))
    return folder


def option_texts(at: AppTest) -> list[str]:
    return [str(option) for box in at.selectbox for option in box.options]


@pytest.mark.parametrize("text, shown", [
    (f"Evaluation × {DATA} × 2", "Evaluation × cats × 2"),
    ("ref:/srv/m/w.pt and ~/runs/a/", "ref:w.pt and a"),
    (r"C:\data\x b", "x b"),
    ("ratio 1/2, a/b and plain names", "ratio 1/2, a/b and plain names"),
])
def test_paths_in_labels_are_cut_to_their_last_part(text, shown):
    assert without_paths(text) == shown


def test_the_result_gives_visitor_safe_title_and_labels(finished, tmp_path):  # noqa: F811
    result = EvaluationResult.open(run_with_paths(finished, tmp_path))
    assert SECRET not in result.title + result.data_label + " ".join(result.models)
    assert "cats" in result.title and result.data_label == "cats" and result.models == ["epoch-9.pt"]


@pytest.mark.slow
@pytest.mark.parametrize("page, prefix", [("pages/benchmark.py", "benchmark"), ("pages/compare_models.py", "compare"),
                                          ("pages/mistakes.py", "mistakes")])
def test_no_server_path_on_the_pages_that_open_runs(finished, tmp_path, monkeypatch, page, prefix):  # noqa: F811
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    runs = tmp_path / "evaluations"
    runs.mkdir()
    folder = run_with_paths(finished, runs)
    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    if prefix != "benchmark":  # the other two open a run under their "Source" switch
        source = at.radio(key=f"{prefix}:source")
        source.set_value(source.options[1]).run()
    own = at.selectbox(key=f"{prefix}:own")
    assert len(own.options) == 1 and "cats" in own.options[0]
    own.set_value(str(folder))
    at.button(key=f"{prefix}:open").click().run()
    assert not at.exception, at.exception
    shown = texts(at) + option_texts(at)
    assert any("cats" in text for text in shown)
    for text in shown:
        assert SECRET not in text and str(tmp_path) not in text, text
