"""Real browser: the downloaded HTML file in headless Chromium with the network cut
(figures draw, images decode, hostile text stays text, no console errors), and a
share link opening the saved report inside the running app."""

from __future__ import annotations

import re

import pytest

import reports
from reports.store import STORE_ENV, ReportStore
from tests.browser import ALL_FIGURES_DRAWN, FIGURE_PROBLEMS_JS, LEGEND_STYLES_JS, chromium_page, ms, require_chromium, running_app
from tests.report_samples import EVERY_METHOD, HOSTILE, every_section_report, hostile_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def watch(page) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {"errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))

    def on_dialog(dialog) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def test_saved_html_renders_offline_with_figures_and_no_errors(tmp_path):
    require_chromium()
    path = tmp_path / "report.html"
    reports.render_to_file(hostile_report(), path)
    with chromium_page(offline=True) as page:
        seen = watch(page)
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_selector(".plotly-graph-div svg.main-svg", timeout=ms(5))
        assert page.locator(".plotly-graph-div .scatterlayer .trace").count() == 3  # every curve drawn
        assert page.locator(".plotly-graph-div .imagelayer image").count() == 1  # the JPEG inside the figure
        left, right = (page.locator(".figure-row .plotly-graph-div").nth(i).bounding_box() for i in (0, 1))
        assert left["width"] > 300 and left["x"] + left["width"] <= right["x"] + 1  # side by side, no overlap
        assert page.locator("h1").inner_text() == f"Title {HOSTILE}"
        assert page.locator("nav.toc a").count() == 3
        decoded = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
        assert decoded and all(decoded)
        legend = page.locator(".plotly-graph-div .legendtext").all_text_contents()
        assert f"curve {HOSTILE}" in legend  # the hostile label is drawn as text
        page.wait_for_function(ALL_FIGURES_DRAWN, timeout=ms(10))  # every figure drawn: late errors have surfaced
    assert not seen["dialogs"], seen["dialogs"]
    assert not seen["errors"], seen["errors"]
    assert all(url.startswith(("file:", "data:")) for url in seen["requests"]), seen["requests"]


def test_share_link_opens_the_saved_report_read_only_in_the_app(tmp_path):
    require_chromium()
    store = ReportStore(tmp_path / "store")
    report = hostile_report()
    saved = store.save(report, reports.render_report(report))
    with running_app({STORE_ENV: str(store.root)}) as url, chromium_page() as page:
        seen = watch(page)
        page.goto(f"{url}/?report={saved.id}", wait_until="domcontentloaded")
        page.get_by_text("read-only").first.wait_for(timeout=ms(10))
        frame = page.frame_locator("iframe").first
        frame.locator(".plotly-graph-div svg.main-svg").first.wait_for(timeout=ms(10))
        assert frame.locator("h1").inner_text() == f"Title {HOSTILE}"
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0  # no navigation
        # The shipped .streamlit/config.toml hides Streamlit's developer toolbar, also on localhost.
        assert page.get_by_text("Deploy", exact=True).count() == 0
        page.goto(f"{url}/?report=..%2F..%2Fetc%2Fpasswd", wait_until="domcontentloaded")
        page.get_by_text("Report not found").first.wait_for(timeout=ms(10))
    assert not seen["dialogs"], seen["dialogs"]
    assert not [e for e in seen["errors"] if "favicon" not in e], seen["errors"]


@pytest.fixture
def streamlit_plotly_theme():
    """Figures built inside the app carry Streamlit's plotly template (placeholder
    colours only its front end resolves): build the report the way the app does."""
    import plotly.io as pio
    from streamlit.elements.lib.streamlit_plotly_theme import configure_streamlit_plotly_theme

    previous = pio.templates.default
    configure_streamlit_plotly_theme()
    yield
    pio.templates.default = previous


def rgb(css: str) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def test_every_section_reads_well_offline(tmp_path, monkeypatch, streamlit_plotly_theme):
    """Gallery, deletion/insertion, SIC/AIC, IROF, SHAP summary and ROAR from the real analyses:
    no label cut or covered, every method's line its own look, thumbnails readable."""
    require_chromium()
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "every.html"
    reports.render_to_file(every_section_report(tmp_path / "roar"), path)
    with chromium_page(offline=True) as page:
        seen = watch(page)
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function(ALL_FIGURES_DRAWN, timeout=ms(10))  # every figure laid out before it is measured
        problems = page.evaluate(FIGURE_PROBLEMS_JS)
        styles = page.evaluate(LEGEND_STYLES_JS)
        thumbnails = page.eval_on_selector_all(".grid img", "els => els.map(e => e.getBoundingClientRect().width)")
    assert not seen["errors"], seen["errors"]
    assert len(problems) >= 10 and not {k: v for k, v in problems.items() if v}, problems
    curves = {k: v for k, v in styles.items() if len(v) >= 4}  # deletion, insertion, SIC, AIC, IROF, ROAR
    assert len(curves) == 6, styles
    for figure, entries in curves.items():
        looks = [(e["colour"], e["dash"], e["marker"]) for e in entries]
        assert len(set(looks)) == len(looks), (figure, looks)  # every method distinguishable
        assert len({e["colour"] for e in entries}) == len(entries), (figure, looks)  # by colour alone, too
        assert all(sum(rgb(e["colour"])) > 150 for e in entries), (figure, looks)  # none (near) black
    roar_names = [e["name"].rsplit(" (", 1)[0] for e in list(curves.values())[-1]]  # "label (score)"
    assert roar_names == ["Saliency", "Grad-CAM", "Input x Gradient", "Random (baseline)"]
    assert len(thumbnails) == 3 * (1 + len(EVERY_METHOD)) and min(thumbnails) >= 150, thumbnails
