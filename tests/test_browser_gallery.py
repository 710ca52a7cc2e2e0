"""One real browser: headless Chromium loads the running app and sees the gallery's heatmaps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import chromium_page, ms, require_chromium, running_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_browser_sees_gallery_with_heatmaps(tmp_path):
    require_chromium()
    console_errors: list[str] = []
    with running_app() as url, chromium_page() as page:
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("heading", name="Attribution gallery").wait_for(timeout=ms(20))
        # Default: 3 sample photos x (image + 3 methods) = 12 pictures in the main area.
        page.wait_for_function(
            "document.querySelectorAll('section.main img, [data-testid=\"stMain\"] img').length >= 12",
            timeout=ms(60),
        )
        page.get_by_text("Egyptian cat").first.wait_for(timeout=ms(2))
        for label in ("Grad-CAM", "Integrated Gradients", "SmoothGrad"):
            assert page.get_by_text(label, exact=True).count() >= 1
        # Images below the fold load lazily: ask for all of them, then wait until decoded.
        page.eval_on_selector_all('[data-testid="stMain"] img', "els => els.forEach(e => e.loading = 'eager')")
        page.wait_for_function(
            "[...document.querySelectorAll('[data-testid=\"stMain\"] img')].every(e => e.complete && e.naturalWidth > 0)",
            timeout=ms(5),
        )
        sizes = page.eval_on_selector_all(
            '[data-testid="stMain"] img', "els => els.map(e => [e.naturalWidth, e.naturalHeight])"
        )
        assert len(sizes) >= 12 and all(w >= 200 and h >= 200 for w, h in sizes)
        shot = Path(os.environ.get("SCREENSHOT_DIR", tmp_path)) / "gallery.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
    assert not [e for e in console_errors if "favicon" not in e], console_errors
