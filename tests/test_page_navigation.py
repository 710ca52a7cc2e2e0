"""Pages run inside app.py's navigation: a deep link opened before app.py ever ran in the
server process lands on its page with the navigation, and a page file run on its own says
how to start the dashboard instead of drawing widgets whose clicks go nowhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.browser import chromium_page, ms, require_chromium, running_app
from tests.patience import generous

ROOT = Path(__file__).resolve().parents[1]


def test_a_page_run_on_its_own_says_how_to_start_the_dashboard():
    at = AppTest.from_file(str(ROOT / "pages" / "benchmark.py"), default_timeout=generous(12)).run()
    assert not at.exception, at.exception
    assert any("streamlit run app.py" in e.value for e in at.error)
    assert not at.get("button") and not at.title  # stopped before drawing anything


@pytest.mark.browser
@pytest.mark.slow
def test_a_deep_link_opened_first_lands_on_its_page_with_the_navigation(tmp_path):
    require_chromium()
    with running_app() as url, chromium_page() as page:
        page.goto(f"{url}/benchmark", wait_until="domcontentloaded")  # the first request this server sees
        page.get_by_role("heading", name="Benchmark").wait_for(timeout=ms(20))
        page.get_by_role("link", name="Attribution gallery").first.wait_for(timeout=ms(20))  # app.py's navigation
        assert page.url.rstrip("/").endswith("/benchmark")
        page.screenshot(path=str(Path(os.environ.get("SCREENSHOT_DIR", tmp_path)) / "deep_link_benchmark.png"))
