"""Helpers for real-browser tests: a Streamlit server on a free local port and headless Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.patience import generous

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def require_chromium() -> None:
    """Skip where no Chromium is installed, except in CI, where that is a failure."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; the README's test command installs it")
        pytest.skip("headless Chromium not installed (apt-get install -y chromium)")


def ms(idle_seconds: float) -> float:
    """A Playwright timeout (milliseconds) for what takes `idle_seconds` on an idle machine."""
    return generous(idle_seconds) * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(extra_env: dict[str, str] | None = None, timeout: float | None = None) -> Iterator[str]:
    """Start `streamlit run app.py` on 127.0.0.1 and yield its URL; stop it afterwards."""
    timeout = generous(10) if timeout is None else timeout
    port = free_port()
    env = {**os.environ, **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise RuntimeError(f"streamlit did not start:\n{output}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=generous(2))
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def chromium_page(offline: bool = False) -> Iterator:
    """A Playwright page in headless Debian Chromium; `offline` cuts all network access."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1100}, offline=offline)
            yield context.new_page()
        finally:
            browser.close()


# Every plotly figure on the page laid out and drawn (what to wait for before measuring or
# before concluding that no late error came).
ALL_FIGURES_DRAWN = (
    "[...document.querySelectorAll('.plotly-graph-div')].every(d => d._fullLayout && d.querySelector('svg.main-svg'))"
)


# Per plotly figure on the page: what a reader would see as broken. Boxes of the
# legend, axis titles, tick labels, the title and subplot titles; a label cut by the
# figure's edge, a legend over an axis title or tick labels, a y-axis title over its
# tick labels, plotly's toolbar over a title (it is laid out, transparent, until the
# pointer enters the figure, so its box is where it will show).
FIGURE_PROBLEMS_JS = r"""
() => {
  const out = {};
  for (const div of document.querySelectorAll('.js-plotly-plot')) {
    const svg = div.querySelector('svg.main-svg').getBoundingClientRect();
    const boxes = sel => [...div.querySelectorAll(sel)].map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0);
    const overlap = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    const parts = {legend: boxes('g.legend rect.bg'), xtitle: boxes('.xtitle'), ytitle: boxes('.ytitle'),
                   title: boxes('.gtitle'), subtitles: boxes('.annotation-text-g'),
                   xticks: boxes('.xtick text'), yticks: boxes('.ytick text'), modebar: boxes('.modebar')};
    const problems = new Set();
    for (const name of ['legend', 'xtitle', 'ytitle', 'title', 'xticks', 'yticks'])
      for (const r of parts[name])
        if (r.left < svg.left - 0.5 || r.right > svg.right + 0.5 || r.top < svg.top - 0.5 || r.bottom > svg.bottom + 0.5)
          problems.add(name + ' cut by the figure edge');
    const pairs = [['legend', 'xtitle'], ['legend', 'xticks'], ['legend', 'ytitle'], ['legend', 'title'],
                   ['ytitle', 'yticks'], ['xtitle', 'xticks'], ['modebar', 'title'], ['modebar', 'subtitles']];
    for (const [a, b] of pairs)
      for (const ra of parts[a]) for (const rb of parts[b]) if (overlap(ra, rb)) problems.add(a + ' over ' + b);
    out[div.id || div.closest('[data-testid]')?.dataset.testid || String(Object.keys(out).length)] = [...problems];
  }
  return out;
}
"""

# Per figure, the look of each legend entry: (line colour, dash pattern, marker shape).
LEGEND_STYLES_JS = r"""
() => {
  const out = {};
  for (const div of document.querySelectorAll('.js-plotly-plot')) {
    out[div.id] = [...div.querySelectorAll('g.legend g.traces')].map(t => {
      const line = t.querySelector('.legendlines path');
      const point = t.querySelector('.legendpoints path');
      return {name: t.querySelector('text.legendtext')?.textContent || '',
              colour: line ? getComputedStyle(line).stroke : (point ? getComputedStyle(point).fill : ''),
              dash: line ? (getComputedStyle(line).strokeDasharray || 'none') : 'none',
              marker: point ? point.getAttribute('d') : ''};
    });
  }
  return out;
}
"""

