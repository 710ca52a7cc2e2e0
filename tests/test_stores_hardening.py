"""Damaged store records and leftovers (issue 24): a report's metadata with `"created": 5`
or a JSON list, a job record of the wrong shape, and a ROAR base record without
`architecture` (or a JSON list) are skipped with a message, never a traceback; a failed
metadata write leaves no orphan report; orphans and stray temporary files are cleaned at
start-up (old ones only); `python -m reports build` refuses ROAR options outside the
page's bounds in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explain.analyses import RoarAnalysis
from explain.analyses.roar import BASE_PART, entry_part
from explain.data.training import mnist_subset
from explain.jobs import JobRunner, JobStore
from explain.methods.registry import MethodSpec
from explain.metrics.roar import DEFAULT_METHODS, RoarSettings, entry_key
from explain.storage import TMP_PREFIX, clean_stray_temporaries, write_json
from reports import Report, ReportStore
from reports import store as report_store

from .job_samples import Countdown
from .report_samples import curves

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


def saved(store: ReportStore, title: str = "r") -> str:
    return store.save(Report.assemble(title, [curves("m")]), "<html></html>").id


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.mark.parametrize("edit", [{"created": 5}, {"size_bytes": "big"}, {"sections": "x"}, {"id": "other"}])
def test_report_metadata_of_the_wrong_type_is_skipped_with_a_count(tmp_path, edit):
    store = ReportStore(tmp_path)
    good, bad, listed = saved(store, "good"), saved(store, "bad"), saved(store, "list")
    meta = tmp_path / f"{bad}.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), **edit}))
    (tmp_path / f"{listed}.json").write_text("[1, 2]")
    assert [r.id for r in store.list()] == [good] and store.skipped == 2


def test_reports_page_lists_around_a_damaged_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLAIN_REPORTS_DIR", str(tmp_path))
    monkeypatch.setenv("EXPLAIN_REPORTS_LIST", "all")
    store = ReportStore(tmp_path)
    saved(store, "kept")
    bad = saved(store, "bad")
    meta = tmp_path / f"{bad}.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "created": 5}))
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert any("1 saved report(s) with damaged metadata" in w.value for w in at.warning)


def test_a_failed_metadata_write_leaves_no_orphan(tmp_path, monkeypatch):
    store = ReportStore(tmp_path)
    real = report_store.atomic_write

    def full_disk(path: Path, data: bytes) -> None:
        if path.suffix == ".json":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(report_store, "atomic_write", full_disk)
    with pytest.raises(OSError):
        saved(store)
    assert list(tmp_path.iterdir()) == []


def test_orphans_and_stray_temporaries_are_cleaned_at_start_up_but_not_a_save_under_way(tmp_path):
    store = ReportStore(tmp_path)
    kept = saved(store)
    old_orphan, new_orphan = saved(store), saved(store)
    for orphan in (old_orphan, new_orphan):
        (tmp_path / f"{orphan}.json").unlink()
    age(tmp_path / f"{old_orphan}.html", 3600)
    old_tmp, new_tmp = tmp_path / f"{TMP_PREFIX}a.html", tmp_path / f"{TMP_PREFIX}b.html"
    old_tmp.write_text("x"), new_tmp.write_text("x")
    age(old_tmp, 3600)
    assert store.clean() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{kept}.html", f"{kept}.json", f"{new_orphan}.html",
                                                                 new_tmp.name])
    cache = tmp_path / "cache" / "jobs" / "abc"
    cache.mkdir(parents=True)
    stray, part = cache / f"{TMP_PREFIX}x.npz", cache / "part.npz"
    stray.write_text("x"), part.write_text("x")
    age(stray, 3600), age(part, 3600)
    assert clean_stray_temporaries(tmp_path / "cache") == 1 and part.exists() and not stray.exists()


@pytest.mark.parametrize("record", [[1, 2], {"kind": "test_countdown", "state": "done", "created": "yesterday"},
                                    {"state": 5}, "text"])
def test_a_damaged_job_record_is_skipped(tmp_path, record):
    runner = JobRunner(JobStore(tmp_path))
    analysis = Countdown(2, salt=str(record))
    good = Countdown(1, salt="good")
    runner.store.write_record(good.key, {"kind": good.kind, "state": "done", "created": 1.0, "settings": {}})
    write_json(runner.store.job_dir(analysis.key) / "job.json", record)  # damaged by hand
    assert runner.store.record(analysis.key) is None
    assert [r["kind"] for r in runner.store.records()] == ["test_countdown"]
    assert runner.find(analysis) is None


@pytest.mark.parametrize("base", [{"accuracy": 0.9}, [0.9, "cnn"], {"architecture": "cnn", "accuracy": "high"}])
def test_a_damaged_roar_base_record_is_skipped_on_the_page(tmp_path, monkeypatch, base):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    analysis = RoarAnalysis.of(mnist_subset(), RoarSettings(methods=tuple(MethodSpec.of(m) for m in DEFAULT_METHODS)))
    runner = JobRunner(JobStore(tmp_path))
    runner.store.shared(f"roar-{analysis.experiment}").put_json(BASE_PART, base)
    assert analysis.stored(runner.reader()) is None
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/roar.py").run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == [
        "1 stored record(s) of this experiment are damaged (edited or cut short): they are skipped, and the next run "
        "measures them again."
    ]


def test_a_damaged_roar_entry_is_counted_on_the_page(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    analysis = RoarAnalysis.of(mnist_subset(), RoarSettings(methods=tuple(MethodSpec.of(m) for m in DEFAULT_METHODS)))
    runner = JobRunner(JobStore(tmp_path))
    scope = runner.store.shared(f"roar-{analysis.experiment}")
    scope.put_json(BASE_PART, {"architecture": "cnn", "accuracy": 0.9})  # sound
    settings = analysis.settings
    names = [entry_key(settings.all_methods[0], f, 0) for f in settings.fractions[:2]]
    scope.put_json(entry_part(names[0]), {"accuracy": 0.5})  # sound
    scope.put_json(entry_part(names[1]), [0.5])  # damaged
    assert analysis.damaged_records(runner.reader()) == 1
    assert analysis.stored(runner.reader()).done == 1
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/roar.py").run()
    assert not at.exception, at.exception
    assert len(at.warning) == 1 and at.warning[0].value.startswith("1 stored record(s) of this experiment are damaged")


@pytest.mark.slow
def test_reports_cli_refuses_roar_options_outside_the_pages_bounds():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    refused = (("--roar-epochs", "1000000", "between 1 and 50"), ("--roar-repeats", "0", "between 1 and 10"),
               ("--roar-fractions", "0", "outside (0, 100)"))
    for option, value, words in refused:
        proc = subprocess.run([sys.executable, "-m", "reports", "build", option, value, "--out", os.devnull],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error: --roar-*") and words in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
