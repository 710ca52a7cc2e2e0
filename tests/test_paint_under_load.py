"""Issue 24, break 5: interactive paint does not queue behind compute.

A job holding the model (a gated attribution: it takes the model's lock and holds it
until the test opens the gate, placed on observed progress) must not hold up another
visitor's page: the photos paint at once, their top-5 follows as soon as the model is
free. Also the pieces: the model lock is served in arrival order, job threads run at a
lower priority when the operator asks, and redrawing a finished gallery encodes no picture again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import explain
from explain.analyses import maps as maps_module
from explain.data.images import NamedImage
from explain.jobs.pools import JOB_NICENESS, Pools
from explain.methods.cache import default_cache, predictions
from explain.models.model_lock import ModelLock
from explain.plots.pictures import encoded_pictures
from tests.apptest import run_until_idle, wait_for_jobs
from tests.patience import generous

APP = str(Path(__file__).resolve().parents[1] / "app.py")


class GatedAttribution:
    """Stands in for a long method: takes the model, says so, and keeps it until `gate` opens."""

    def __init__(self) -> None:
        self.original = maps_module.attribute
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.bundle: explain.ModelBundle | None = None

    def __call__(self, bundle, images, method, *args, **kwargs):
        with bundle.lock:
            self.bundle = bundle
            self.entered.set()
            assert self.gate.wait(generous(60)), "the test never opened the gate"
            return self.original(bundle, images, method, *args, **kwargs)


def gallery(samples: tuple[str, ...]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=generous(30))
    at.session_state["samples"] = list(samples)
    at.session_state["methods"] = ["saliency"]
    return at


def top5_lines(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("1. ")]


def test_photos_paint_while_a_job_holds_the_model(monkeypatch, tmp_path):
    gated = GatedAttribution()
    monkeypatch.setattr(maps_module, "attribute", gated)
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))  # no stored map of an earlier test: the job computes
    default_cache().clear()
    predictions.clear()  # the second visitor's photo needs the model for its top-5
    try:
        first = gallery(("chelsea",)).run()  # its first visit starts the gallery job
        assert not first.exception, first.exception
        assert gated.entered.wait(generous(30)), "the gallery job never reached the model"

        second = gallery(("astronaut",)).run(timeout=generous(5))  # would wait for the gate before the fix
        assert not second.exception, second.exception
        assert [c for image in second.get("image") for c in image.captions] == ["astronaut"]  # the photo, painted
        assert any("busy" in info.value for info in second.info)
        assert not top5_lines(second)  # its top-5 waits for the model: nothing made up meanwhile
        assert "Methods" not in [widget.label for widget in second.multiselect]  # the rest follows it
    finally:
        gated.gate.set()
    astronaut = NamedImage("astronaut", explain.load_sample("astronaut")).digest
    assert gated.bundle is not None
    patience = threading.Event()
    for _ in range(int(generous(30) / 0.05)):  # the background prediction lands on observed progress
        if predictions.known(gated.bundle, [astronaut])[0] is not None:
            break
        patience.wait(0.05)
    assert predictions.known(gated.bundle, [astronaut])[0] is not None
    second.run()
    assert not second.exception, second.exception
    assert top5_lines(second) and "Methods" in [widget.label for widget in second.multiselect]
    wait_for_jobs()


def test_model_lock_serves_waiters_in_arrival_order():
    lock = ModelLock()
    order: list[str] = []
    proceed = threading.Event()
    lock.acquire()

    def other() -> None:
        with lock:
            order.append("waiter")
            proceed.wait(generous(10))

    waiter = threading.Thread(target=other)
    waiter.start()
    for _ in range(int(generous(10) / 0.01)):  # until the other thread waits for the lock
        if lock.waiting():
            break
        threading.Event().wait(0.01)
    assert lock.waiting() == 1
    assert lock.acquire(blocking=False)  # re-entrant: the owner takes it again at once (two holds)
    lock.release()
    assert not order  # one hold is left: nobody got in yet
    lock.release()  # the last hold: handed to the waiter, not to whoever asks next
    assert not lock.acquire(blocking=False)  # the main thread does not jump the queue
    proceed.set()
    waiter.join(generous(10))
    assert order == ["waiter"]
    assert lock.acquire(timeout=generous(1))
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_model_lock_timeout_leaves_the_queue():
    lock = ModelLock()
    got: list[bool] = []
    lock.acquire()
    thread = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.05)))
    thread.start()
    thread.join(generous(10))
    assert got == [False] and not lock.waiting()
    lock.release()
    assert lock.acquire(blocking=False)


def test_job_threads_run_below_the_server_when_the_operator_says_so(monkeypatch):
    monkeypatch.setenv("EXPLAIN_JOB_NICENESS", "5")
    seen: list[int] = []
    done = threading.Event()

    def work() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        done.set()

    Pools({"interactive": 1}).start("interactive", work)
    assert done.wait(generous(10))
    assert seen[0] >= 5
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 5  # this thread kept its own
    assert JOB_NICENESS == 0  # off by default


def test_redrawing_a_finished_gallery_encodes_no_picture_again():
    at = run_until_idle(gallery(("chelsea", "coffee")))
    assert len(at.get("image")) == 4 and not at.exception
    before = encoded_pictures.encoded
    at.run()  # what every poll of every session following a job does
    assert len(at.get("image")) == 4
    assert encoded_pictures.encoded == before


def test_partial_results_redraw_less_often_the_more_jobs_are_active(monkeypatch):
    """The server's total redraws of partial results stay about constant: twice the
    progress poll for a few jobs, then active jobs / RESULT_REDRAWS_PER_SECOND."""
    from pages.ui import jobs as page_jobs

    class Runner:
        def __init__(self, active: int, finished: int) -> None:
            self.list = [type("J", (), {"active": True})()] * active + [type("J", (), {"active": False})()] * finished

        def jobs(self):
            return self.list

    def seconds(active: int, finished: int = 3) -> float:
        monkeypatch.setattr(page_jobs, "default_runner", lambda: Runner(active, finished))
        return page_jobs.result_poll_seconds()

    assert seconds(1) == seconds(4) == 2 * page_jobs.POLL_SECONDS  # finished jobs do not count
    assert seconds(8) == 8 / page_jobs.RESULT_REDRAWS_PER_SECOND == 4.0
    assert seconds(16, 0) == 8.0


def test_the_server_runs_no_full_garbage_collection_after_each_script_run():
    """Streamlit's default `runner.postScriptGC` ran gc.collect(2) (~0.3 s holding the GIL
    with torch and transformers loaded) after every fragment poll of every session: the
    event loop waited seconds for the GIL. The repository's config turns it off, read by
    Streamlit as `streamlit run` from the repository root reads it."""
    program = "from streamlit import config; print(config.get_option('runner.postScriptGC'))"
    root = Path(APP).parent
    done = subprocess.run([sys.executable, "-c", program], cwd=root, capture_output=True, text=True,
                          timeout=generous(10))
    assert done.stdout.split()[-1] == "False", done.stderr
