"""The job runner and its store: dedupe, cancel, progress, persistence across runners and
processes, kill-and-resume, concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import explain
from explain.analyses import AttributionMaps, ClassChoice, MetricAnalysis, ShapSummary, analysis_from_record, prepare_images
from explain.analyses import maps as maps_module
from explain.jobs import JobContext, JobLimitError, JobRunner, JobStore, Progress
from explain.methods.registry import MethodSpec
from tests.job_samples import Countdown, CountInputs
from tests.patience import generous
from tests.synthetic import PatchCNN, bundle_of

ROOT = Path(__file__).resolve().parents[1]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_same_job_asked_twice_runs_once_and_a_new_runner_finds_it_on_disk(tmp_path):
    log = tmp_path / "log"
    runner = JobRunner(JobStore(tmp_path / "store"))
    first = runner.submit(Countdown(5), CountInputs(str(log), 0.05))
    assert runner.submit(Countdown(5), CountInputs(str(log), 0.05)) is first
    assert first.wait(generous(1)) and first.state == "done" and first.result.values == (0, 1, 4, 9, 16)
    assert len(lines(log)) == 5
    restarted = JobRunner(JobStore(tmp_path / "store"))  # an app restart
    found = restarted.find(Countdown(5))
    assert found is not None and found.state == "done" and found.result.values == (0, 1, 4, 9, 16)
    assert restarted.submit(Countdown(5), CountInputs(str(log))).state == "done" and len(lines(log)) == 5
    assert restarted.find(Countdown(6)) is None  # other settings, another job


def test_cancel_keeps_finished_parts_and_a_rerun_computes_only_the_rest(tmp_path):
    log = tmp_path / "log"
    runner = JobRunner(JobStore(tmp_path / "store"))
    job = runner.submit(Countdown(40), CountInputs(str(log), 0.0, str(tmp_path / "gate"), 3))  # holds at part 3
    while job.progress.label != "part 3":  # three parts stored, the fourth waiting
        assert job.active, job.error
        time.sleep(0.01)
    job.cancel()
    assert job.wait(generous(1)) and job.state == "cancelled" and "stored" in job.error
    done = len(lines(log))
    assert done == 3
    again = runner.submit(Countdown(40), CountInputs(str(log), 0.0))
    assert again is not job and again.wait(generous(1)) and again.state == "done"
    assert len(lines(log)) == 40  # each part computed exactly once overall
    assert again.progress.done == 40 and again.progress.computed == 40 - done


def test_progress_reports_rate_and_eta_over_the_work_done_here():
    p = Progress(done=30, total=100, unit="passes", computed=20, computing_seconds=4.0)
    assert p.rate == pytest.approx(5.0) and p.eta_seconds == pytest.approx(14.0)
    assert p.describe().startswith("30/100 passes · 5 passes/s · about 14 s left")
    assert Progress(total=10).rate is None and Progress(total=10).eta_seconds is None
    ctx = JobContext.detached()
    ctx.plan(10, "steps")
    ctx.reused(4)
    ctx.start_clock()
    time.sleep(0.05)
    ctx.advance(2)
    assert ctx.current.done == 6 and ctx.current.computed == 2 and ctx.current.computing_seconds >= 0.04
    assert ctx.current.eta_seconds == pytest.approx(4 / ctx.current.rate)


def test_a_failing_analysis_reports_its_error_and_nothing_is_marked_done(tmp_path):
    runner = JobRunner(JobStore(tmp_path / "store"))
    job = runner.submit(Countdown(3), CountInputs(str(tmp_path / "no-such-dir" / "log")))
    assert job.wait(generous(1)) and job.state == "failed" and "FileNotFoundError" in job.error
    assert runner.store.record(job.key)["state"] == "failed"
    assert JobRunner(JobStore(tmp_path / "store")).find(Countdown(3)) is None


def test_a_pool_accepts_only_a_bounded_number_of_active_jobs(tmp_path):
    runner = JobRunner(JobStore(tmp_path / "store"), pools={"interactive": 1})
    gate = tmp_path / "gate"  # closed: no job can finish before the limit is checked
    held = CountInputs(str(tmp_path / "log"), 0.0, str(gate))
    jobs = [runner.submit(Countdown(1, salt=str(i)), held) for i in range(8)]
    with pytest.raises(JobLimitError, match="at most 8"):
        runner.submit(Countdown(1, salt="one too many"), CountInputs(str(tmp_path / "log")))
    gate.touch()
    for job in jobs:
        assert job.wait(generous(1)) and job.state == "done"


def run_module(*args: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "EXPLAIN_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_the_same_job_in_two_processes_runs_once(tmp_path):
    log = tmp_path / "log"
    procs = [run_module("-m", "tests.job_samples", "20", "0.05", str(log), cache=tmp_path / "cache") for _ in range(2)]
    outputs = [p.communicate(timeout=generous(10))[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert all(out.strip().endswith("done 361") for out in outputs), outputs
    computed = lines(log)
    assert sorted(int(line.split()[1]) for line in computed) == list(range(20))  # each part once, by one process


def wait_for(condition, proc: subprocess.Popen, idle_seconds: float) -> None:
    """Poll `condition` until it holds; fail when `proc` ended first or it hangs."""
    deadline = time.monotonic() + generous(idle_seconds)
    while not condition():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "nothing happened for far longer than the work takes"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_killed_job_resumes_with_its_finished_parts(tmp_path):
    log, gate = tmp_path / "log", tmp_path / "gate"  # the gate never opens: the job holds at part 5
    proc = run_module("-m", "tests.job_samples", "200", "0.0", str(log), str(gate), "5", cache=tmp_path / "cache")
    wait_for(lambda: len(lines(log)) == 5, proc, 10)  # five parts stored, the sixth held
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=generous(1))
    killed_after = len(lines(log))
    assert killed_after == 5
    runner = JobRunner(JobStore(tmp_path / "cache"))
    job = runner.submit(Countdown(200), CountInputs(str(log), 0.0))
    assert job.wait(generous(5)) and job.state == "done" and job.result.values[-1] == 199 * 199
    pids = [line.split()[0] for line in lines(log)]
    assert len(pids) == 200 and pids.count(str(os.getpid())) == 200 - killed_after


WRITER = """
import sys
from explain.jobs import JobStore
scope = JobStore(sys.argv[1]).shared("roar-experiment")
for i in range(int(sys.argv[3])):
    scope.put_json(f"entry-{sys.argv[2]}-{i}", {"accuracy": i / 1000, "writer": sys.argv[2]})
"""


@pytest.mark.slow
def test_two_processes_writing_one_store_at_once_lose_nothing(tmp_path):
    """Issue 14 #13: 2 x 300 ROAR entries used to leave 321."""
    procs = [run_module("-c", WRITER, str(tmp_path / "store"), name, "300", cache=tmp_path) for name in ("a", "b")]
    assert all(p.wait(generous(10)) == 0 for p in procs), [p.communicate()[0] for p in procs]
    records = JobStore(tmp_path / "store").shared("roar-experiment").json_records("entry-")
    assert len(records) == 600
    assert {r["writer"] for r in records} == {"a", "b"}


@pytest.mark.slow
def test_a_killed_attribution_job_recomputes_only_missing_maps(tmp_path, monkeypatch):
    """A real analysis: maps finished before the kill are reused (counted model calls)."""
    script = """
import sys
import explain
from explain.analyses import AttributionMaps, prepare_images
from explain.jobs import default_runner
from explain.methods.registry import MethodSpec
from tests.synthetic import PatchCNN, bundle_of
from tests.test_jobs import photos
import threading
import explain.analyses.maps as maps_module
original, computed = maps_module.attribute, []
def held_after_two(*args, **kwargs):  # two maps (one per call) are stored, then the job holds until killed
    if len(computed) == 2:
        threading.Event().wait()
    computed.append(1)
    return original(*args, **kwargs)
maps_module.attribute = held_after_two
bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
prepared = prepare_images(bundle, photos())
job = default_runner().submit(AttributionMaps(prepared.subject(), (MethodSpec.of("occlusion", {"window": 4, "stride": 2}),)), prepared)
job.wait()
"""
    cache = tmp_path / "cache"
    proc = run_module("-c", script, cache=cache)
    maps_dir = cache / "shared" / "maps"
    wait_for(lambda: maps_dir.is_dir() and len(list(maps_dir.glob("map-*.npz"))) >= 2, proc, 20)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=generous(1))
    stored = len(list(maps_dir.glob("map-*.npz")))
    assert stored == 2, stored
    computed = []
    original = maps_module.attribute
    monkeypatch.setattr(maps_module, "attribute", lambda b, x, *a, **k: computed.append(len(x)) or original(b, x, *a, **k))
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    prepared = prepare_images(bundle, photos())
    analysis = AttributionMaps(prepared.subject(), (MethodSpec.of("occlusion", {"window": 4, "stride": 2}),))
    job = JobRunner(JobStore(cache)).submit(analysis, prepared)
    assert job.wait(generous(20)) and job.state == "done", job.error
    assert sum(computed) == 12 - stored
    direct = explain.attribute(bundle, prepared.batch, "occlusion", list(analysis.subject.targets), window=4, stride=2)
    np.testing.assert_allclose(job.result.maps["occlusion{\"stride\":2,\"window\":4}"], direct, rtol=1e-5, atol=1e-6)


def photos() -> list[explain.NamedImage]:
    from PIL import Image

    rng = np.random.default_rng(1)
    return [explain.NamedImage(f"p{i}", Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))) for i in range(12)]


def test_settings_round_trip_through_the_job_record(tmp_path):
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    prepared = prepare_images(bundle, photos()[:2])
    subject = prepared.subject(ClassChoice("class", 1))
    specs = (MethodSpec.of("gradcam"), MethodSpec.of("smoothgrad", {"n_samples": 4}))
    for analysis in (AttributionMaps(subject, specs), MetricAnalysis.of("deletion_insertion", subject, specs, {"steps": 8}),
                     ShapSummary(subject, MethodSpec.of("shap_gradient"), top_k=1, plotted=2)):
        record = {"kind": analysis.kind, "settings": analysis.settings_record()}
        again = analysis_from_record(record)
        assert again == analysis and again.key == analysis.key
    assert AttributionMaps(subject, specs).key != AttributionMaps(prepared.subject(), specs).key  # the class is part of it


def test_maps_of_one_analysis_serve_another_and_a_process_restart(tmp_path, monkeypatch):
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    prepared = prepare_images(bundle, photos()[:3])
    specs = (MethodSpec.of("gradcam"), MethodSpec.of("saliency"))
    from explain.methods.cache import default_cache

    default_cache().clear()  # maps another test left in memory would not reach this store
    runner = JobRunner(JobStore(tmp_path))
    gallery = runner.submit(AttributionMaps(prepared.subject(), specs), prepared)
    assert gallery.wait(generous(5)) and gallery.state == "done"
    default_cache().clear()  # as in a new process
    calls = []
    monkeypatch.setattr(maps_module, "attribute", lambda *a, **k: calls.append(a))
    metric = JobRunner(JobStore(tmp_path)).submit(MetricAnalysis.of("deletion_insertion", prepared.subject(), specs, {"steps": 4}), prepared)
    assert metric.wait(generous(5)) and metric.state == "done", metric.error
    assert calls == [] and set(metric.result.curves["deletion"]) == {"gradcam", "saliency"}


def test_jobs_run_in_parallel_threads_do_not_block_each_other(tmp_path):
    runner = JobRunner(JobStore(tmp_path / "store"), pools={"interactive": 2, "long": 1})
    log, gate = tmp_path / "log", tmp_path / "gate"
    slow = runner.submit(Countdown(20, salt="slow"), CountInputs(str(log), 0.0, str(gate), 3))  # holds at part 3
    quick = runner.submit(Countdown(2, salt="quick"), CountInputs(str(log), 0.0))
    assert quick.wait(generous(1)) and quick.state == "done" and slow.active
    gate.touch()
    assert slow.wait(generous(1)) and slow.state == "done"
    assert threading.active_count() < 50
