"""Issue 24 in the app (AppTest): a results folder with hostile names opened from "Runs of
this app" renders them as plain text (no markdown image, so no request to another host)
and shows no server path; damaged runs are left out with a message, a damaged folder is
one message; a locked session sees its budget, how to get more, and parameter ranges
that stop at the cheap defaults."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from streamlit.testing.v1 import AppTest

from explain.evaluation import ResultsDir

from .test_results_untrusted import checkpoint, finished  # noqa: F401  (fixtures)

assert checkpoint  # the fixture `finished` needs (pytest finds it in this module)

APP = str(Path(__file__).resolve().parents[1] / "app.py")
LOCKED = {"explain": {"upload_password": "s3cret"}}
BEACON = "![beacon](https://tracker.example/b.png)"
LINK = "[click](https://tracker.example/)"
UNESCAPED_LINK = re.compile(r"(?<!\\)\]\s*(?<!\\)\(")


def texts(at: AppTest) -> list[str]:
    """Every markdown string the page sent (markdown, captions, headers, alerts)."""
    kinds = ("markdown", "caption", "subheader", "header", "title", "error", "warning", "info", "success")
    return [str(element.value) for kind in kinds for element in at.get(kind)]


def hostile_run(finished: Path, runs: Path) -> Path:  # noqa: F811
    """A copy of a finished run whose manifest and rows carry markdown images and links."""
    folder = Path(shutil.copytree(finished, runs / "hostile"))
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["title"] = f"Evaluation {BEACON}"
    manifest["models"][0]["label"] = f"model {BEACON} <img src=https://tracker.example/i.png>"
    manifest["methods"][0]["label"] = f"method {LINK}"
    manifest["scores"][0]["name"] = f"score {BEACON}"
    (folder / "_manifest.json").write_text(json.dumps(manifest))
    store = ResultsDir(folder)
    for m, c in store.done():
        table = pq.read_table(store.rows_path(m, c))
        names = [f"img {BEACON}"] * table.num_rows
        table = table.set_column(table.schema.get_field_index("image"), "image", [names])
        pq.write_table(table, store.rows_path(m, c))
    return folder


def benchmark(tmp_path: Path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page("pages/benchmark.py").run()
    assert not at.exception, at.exception
    return at


def test_hostile_names_in_a_run_render_inert_with_no_server_path(finished, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    runs = tmp_path / "evaluations"
    runs.mkdir()
    hostile_run(finished, runs)
    damaged = Path(shutil.copytree(finished, runs / "damaged"))
    (damaged / "_manifest.json").write_text("[]")
    at = benchmark(tmp_path)
    assert any("1 run folder(s) left out" in t for t in texts(at))
    own = at.selectbox(key="benchmark:own")
    assert len(own.options) == 1 and "tracker.example" in own.options[0]  # the option is plain text
    own.set_value(str(runs / "hostile"))
    at.button(key="benchmark:open").click().run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert any("tracker" in t for t in shown)  # the names are shown...
    for text in shown:  # ...as typed: no markdown image or link, no HTML tag
        assert not UNESCAPED_LINK.search(text), text
        assert not re.search(r"(?<!\\)<img", text), text
        assert str(tmp_path) not in text and "/tmp" not in text, text


def test_a_damaged_opened_folder_is_one_message(finished, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    runs = tmp_path / "evaluations"
    runs.mkdir()
    folder = Path(shutil.copytree(finished, runs / "run"))
    at = benchmark(tmp_path)
    at.selectbox(key="benchmark:own").set_value(str(folder))
    at.button(key="benchmark:open").click().run()
    assert not at.exception and not at.error
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["chunk_size"] = 0
    (folder / "_manifest.json").write_text(json.dumps(manifest))
    at.run()
    assert not at.exception, at.exception
    message = " ".join(e.value for e in at.error)
    assert "cannot be shown" in message and "chunk" in message and str(tmp_path) not in message


def test_a_locked_session_sees_its_budget_and_only_the_cheap_defaults():
    at = AppTest.from_file(APP, default_timeout=300)
    at.secrets.update(LOCKED)
    at.session_state["samples"] = ["coffee"]
    at.session_state["methods"] = ["saliency", "integrated_gradients"]
    at.session_state["param:integrated_gradients:n_steps"] = 512  # kept from an unlocked session, say
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    note = " ".join(c.value for c in at.caption)
    assert "plans 33 model passes" in note and "at most 10,000 model passes per run" in note
    assert "upload password" in note
    steps = at.number_input(key="param:integrated_gradients:n_steps")
    assert steps.max == 32 and steps.value <= 32  # the registry's default: larger values cost more
    assert "compute budget" in (steps.help or "")
