"""Does interactive paint queue behind compute? A Streamlit server on loopback (port 8608
only), first idle, then with `--sessions` headless-Chromium sessions that each choose
their own extra sample photo(s) and then all press Run at once (so each starts its own gallery
job: the interactive pool's 2 workers busy, the rest queued); printed: the health
endpoint's latency (median and maximum, polled every 0.25 s) and a fresh visitor's time
to the first photos (median of `--visitors`; the visitor's default selection was
computed during the warm-up, so it needs no model), idle against loaded, and their
ratios, and the server's CPU time in the loaded phase (all threads, and its main
thread: Tornado's event loop). Bounded: every wait has a limit (`--limit` seconds), and the server and
browsers stop at the end or on error. The server watches no files (an edit elsewhere
in the tree must not reload its modules mid-run).

    python bench/bench_concurrency.py [--sessions 8] [--visitors 3] [--limit 240]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PORT = 8608  # the one port benchmarks and screenshots use on shared machines
URL = f"http://127.0.0.1:{PORT}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHOTO = '[data-testid="stImage"] img'


def start_server(cache: str, limit: float) -> subprocess.Popen:
    env = {**os.environ, "EXPLAIN_CACHE_DIR": cache}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
         "127.0.0.1", "--server.port", str(PORT), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("streamlit exited at start-up (is port 8608 taken?)")
        if health_seconds() is not None:
            return server
        time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"streamlit did not answer within {limit:.0f} s")


def health_seconds(timeout: float = 60.0) -> float | None:
    """Seconds the health endpoint took to answer 200, or None."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{URL}/_stcore/health", timeout=timeout) as response:
            return time.perf_counter() - start if response.status == 200 else None
    except OSError:
        return None


class HealthProbe:
    """Polls the health endpoint in a thread until stopped; keeps each latency."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            seconds = health_seconds()
            if seconds is not None:
                self.latencies.append(seconds)
            self._stop.wait(0.25)

    def __enter__(self) -> "HealthProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=70)


def first_photos_seconds(browser: Any, limit: float) -> float:
    """A fresh visitor: seconds from opening the gallery to its first photo on screen."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(URL, timeout=limit * 1000)
        page.locator(PHOTO).first.wait_for(timeout=limit * 1000)
        return time.perf_counter() - start
    finally:
        context.close()


def warm_up(browser: Any, limit: float) -> float:
    """The first visit: loads the model and computes the default gallery to the end (its
    "Add to report" button shows once the job is done), so the idle phase is idle."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(URL, timeout=limit * 1000)
        page.locator("button", has_text="Add to report").first.wait_for(timeout=limit * 4000)
        return time.perf_counter() - start
    finally:
        context.close()


OTHER_SAMPLES = ("rocket", "motorcycle", "china", "flower", "hubble", "immunohistochemistry")  # not chosen by default


def extra_photos(session: int) -> list[str]:
    """Sample photos session `session` adds to the defaults: its own set, so its own job."""
    others = OTHER_SAMPLES
    return [others[session % len(others)]] + ([others[(session + 1) % len(others)]] if session >= len(others) else [])


def open_session(browser: Any, session: int, limit: float) -> tuple[Any, Any]:
    """A session that opens the gallery and adds its own photo(s), ready to press Run;
    returns (context, page), kept open (following its job once Run is pressed)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(URL, timeout=limit * 1000)
    page.locator(PHOTO).first.wait_for(timeout=limit * 1000)
    box = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"] input').first
    for name in extra_photos(session):
        box.click(timeout=limit * 1000)
        box.fill(name)
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.locator('[data-testid="stMain"]').get_by_text(name, exact=True).first.wait_for(timeout=limit * 1000)
    page.locator("button", has_text="Run").first.wait_for(timeout=limit * 1000)
    return context, page


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU seconds (user + system) of a process, or of one of its threads (Linux /proc)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> str:
    if not values:
        return "no answer"
    return f"median {statistics.median(values):.3f} s, max {max(values):.3f} s ({len(values)} probes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--visitors", type=int, default=3, help="fresh visitors timed per phase")
    parser.add_argument("--limit", type=float, default=240.0, help="seconds any one wait may take")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = start_server(tempfile.mkdtemp(prefix="bench-concurrency-"), args.limit)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                print(f"warm-up visit (model and default gallery): {warm_up(browser, args.limit):.1f} s", flush=True)
                with HealthProbe() as idle_health:
                    idle = [first_photos_seconds(browser, args.limit) for _ in range(args.visitors)]
                print(f"idle phase done: first photos {idle}", flush=True)
                sessions = [open_session(browser, i, args.limit) for i in range(args.sessions)]
                print(f"{args.sessions} sessions ready", flush=True)
                with HealthProbe() as loaded_health:
                    cpu_before = cpu_seconds(server.pid), cpu_seconds(server.pid, server.pid)
                    started = time.perf_counter()
                    for _, page in sessions:  # at once: each starts its own job
                        page.locator("button", has_text="Run").first.click(timeout=args.limit * 1000)
                    pressing = time.perf_counter() - started
                    loaded = [first_photos_seconds(browser, args.limit) for _ in range(args.visitors)]
                    loaded_wall = time.perf_counter() - started
                    server_cpu = cpu_seconds(server.pid) - cpu_before[0]
                    main_cpu = cpu_seconds(server.pid, server.pid) - cpu_before[1]
                for context, _ in sessions:
                    context.close()
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"{args.sessions} sessions pressed Run in {pressing:.1f} s")
    print(f"health endpoint, idle:   {summary(idle_health.latencies)}")
    print(f"health endpoint, loaded: {summary(loaded_health.latencies)}")
    print(f"loaded phase: {loaded_wall:.0f} s; server CPU {server_cpu:.0f} s, of it the main thread "
          f"(the event loop) {main_cpu:.0f} s ({main_cpu / loaded_wall:.0%} of a core)")
    print(f"first photos, idle:   median {statistics.median(idle):.2f} s of {idle}")
    print(f"first photos, loaded: median {statistics.median(loaded):.2f} s of {loaded}")
    if idle_health.latencies and loaded_health.latencies:
        health = statistics.median(loaded_health.latencies) / statistics.median(idle_health.latencies)
        photos = statistics.median(loaded) / statistics.median(idle)
        print(f"ratios loaded/idle: health {health:.2f}x, first photos {photos:.2f}x")


if __name__ == "__main__":
    main()
