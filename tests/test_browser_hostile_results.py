"""Issue 24 in Chromium: a results folder whose names carry markdown images, links and
HTML, opened from "Runs of this app" on the Benchmark page, makes no request to another
host, draws no image from it, and shows the names as typed and no server path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .browser import chromium_page, require_chromium, running_app
from .test_hardening2_app import hostile_run
from .test_results_untrusted import checkpoint, finished  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path(os.environ.get("EXPLAIN_SHOTS", "/work/wt/shots/issue-24"))


def test_hostile_names_render_inert_in_chromium(finished, tmp_path):  # noqa: F811
    require_chromium()
    runs = tmp_path / "evaluations"
    runs.mkdir()
    hostile_run(finished, runs)
    requests: list[str] = []
    with running_app({"EXPLAIN_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}) as url, chromium_page() as page:
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{url}/benchmark")
        page.get_by_text("Runs of this app").wait_for(timeout=120_000)
        page.locator('[data-testid="stSelectbox"]').first.click()
        page.get_by_role("option").first.click()
        page.locator("button", has_text="Open").last.click()
        page.get_by_text("Worst images by").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1500)  # let any image the page would draw start loading
        if SHOTS.parent.is_dir():
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / "benchmark-hostile-names.png"), full_page=True)
        body = page.inner_text("body").replace("\u2060", "")  # the invisible joiner that keeps URLs unlinked
        sources = page.eval_on_selector_all("img", "els => els.map(e => e.getAttribute('src') || '')")
        links = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href') || '')")
    assert "![beacon](https://tracker.example/b.png)" in body  # shown as typed
    assert not [u for u in requests if "tracker.example" in u], requests
    assert not [s for s in sources if "tracker" in s]
    assert not [h for h in links if "tracker" in h and not h.startswith("#")]  # "#...": the heading's own anchor
    assert str(tmp_path) not in body
