"""A report as PDF, printed from the same self-contained HTML by headless Chromium
(Playwright's `page.pdf`), for review systems and print.

The page is loaded with every network request refused; plotly draws each figure as
it does in a browser, then each figure is replaced by a PNG of itself
(`Plotly.toImage`, twice the pixels) so the PDF holds static images that break
across pages cleanly; the report's print styles (`@media print` in the base
template) lay it out for A4. Chromium is the system's (`chromium` on PATH, as the
README's commands install it, or `$EXPLAIN_CHROMIUM`), else Playwright's own
download (`playwright install chromium`); without either, `PdfUnavailable` says how
to get one. weasyprint was not used: it runs no JavaScript, so no plotly figure.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
PRINT_WIDTH_PX = 860  # A4 minus the margins at 96 dpi, a little wider: figures drawn at about the width they print
TIMEOUT_MS = 120_000
MAX_HTML_BYTES = 512 * 2**20

FIGURES_READY = """() => Array.from(document.querySelectorAll('.plotly-graph-div')).every(d => d._fullLayout)"""
STATIC_FIGURES = """async () => {
  const figures = Array.from(document.querySelectorAll('.plotly-graph-div'));
  for (const div of figures) {
    const width = Math.max(div.offsetWidth, 300), height = Math.max(div.offsetHeight, 200);
    const url = await Plotly.toImage(div, {format: 'png', width: width, height: height, scale: 2});
    const img = document.createElement('img');
    img.src = url;
    img.className = 'plotly-static';
    img.alt = 'figure';
    div.replaceWith(img);
  }
  return figures.length;
}"""


PLAYWRIGHT_MISSING = "PDF export needs the playwright package (in requirements.txt): pip install -r requirements.txt"
CHROMIUM_MISSING = ("PDF export needs Chromium and none was found: install it as the README's first command does "
                    "(apt-get install chromium), or run `python -m playwright install chromium`, or set "
                    "EXPLAIN_CHROMIUM to its path")


class PdfUnavailable(RuntimeError):
    """No Chromium to print with (or Playwright missing): the message says how to install one."""


def chromium_path() -> str | None:
    """The system's Chromium: `$EXPLAIN_CHROMIUM`, else the first of `CHROMIUM_NAMES` on PATH;
    None lets Playwright use its own download, if there is one."""
    configured = os.environ.get("EXPLAIN_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def pdf_missing() -> str | None:
    """Why no PDF can be printed here (no Chromium, no playwright), or None when it can."""
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        return PLAYWRIGHT_MISSING
    if chromium_path() is not None or any(Path(p).is_dir() for p in _playwright_browsers()):
        return None
    return CHROMIUM_MISSING


def _playwright_browsers() -> list[str]:
    """Where Playwright keeps the Chromium it downloads (`playwright install chromium`)."""
    root = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    return [str(p) for p in root.glob("chromium*")] if root.is_dir() else []


def html_to_pdf(html: str) -> bytes:
    """The report's HTML printed to PDF bytes (A4, backgrounds, figures as images).

    Runs in a worker thread of its own: Playwright's synchronous API refuses a thread
    that runs an asyncio loop (Streamlit's may)."""
    if len(html.encode("utf-8")) > MAX_HTML_BYTES:
        raise ValueError(f"the report is over {MAX_HTML_BYTES // 2**20} MB: too large to print")
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(_print, html).result()


def _print(html: str) -> bytes:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise PdfUnavailable(PLAYWRIGHT_MISSING) from None
    executable = chromium_path()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        except PlaywrightError as exc:
            raise PdfUnavailable(f"{CHROMIUM_MISSING} ({str(exc).splitlines()[0]})") from None
        try:
            page = browser.new_page(viewport={"width": PRINT_WIDTH_PX, "height": 1200})
            page.route("**/*", lambda route: route.abort())  # offline: the report needs nothing from a network
            page.set_default_timeout(TIMEOUT_MS)
            page.set_content(html, wait_until="load")
            page.wait_for_function(FIGURES_READY)
            page.evaluate(STATIC_FIGURES)
            page.emulate_media(media="print")
            return page.pdf(format="A4", print_background=True, prefer_css_page_size=False,
                            margin={"top": "14mm", "bottom": "14mm", "left": "12mm", "right": "12mm"})
        finally:
            browser.close()


def write_pdf(html: str, path: str | Path) -> int:
    """Print `html` to the file `path`; returns its size in bytes."""
    data = html_to_pdf(html)
    Path(path).write_bytes(data)
    return len(data)
