"""The rendered report: every section present, self-contained (no external URL),
hostile text shown as text, header complete, and the size budget."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

import reports
from explain.plots.overlay import DisplaySettings
from tests.report_samples import HOSTILE, HOSTILE_IMG, curves, gallery, hostile_bundle, hostile_report

URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "srcset", "xlink:href", "background"}


class ReportParser(HTMLParser):
    """Collects what the tests check: elements with their attributes, script bodies, visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag in ("script", "style"):
            self._in = tag
            (self.scripts if tag == "script" else self.styles).append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "style":
            self.styles[-1] += data
        else:
            self.text.append(data)


def parse(html: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def hostile_html() -> str:
    return reports.render_report(hostile_report())


def test_every_section_and_toc_entry_is_present(hostile_html):
    report = hostile_report()
    parsed = parse(hostile_html)
    sections = [a for tag, a in parsed.elements if tag == "section"]
    assert [s["data-key"] for s in sections] == ["gallery", "curves", "picture"]
    toc = [a["href"] for tag, a in parsed.elements if tag == "a" and a.get("href", "").startswith("#")]
    assert toc == [f"#{s['id']}" for s in sections]
    text = " ".join(parsed.text)
    for section in report.sections:
        assert section.title in text
    # Gallery: header row (image + 2 methods), 2 rows of 3 pictures, all embedded.
    images = [a for tag, a in parsed.elements if tag == "img"]
    assert len(images) == 2 * 3
    for image in images:
        header, payload = image["src"].split(",", 1)
        assert header in ("data:image/png;base64", "data:image/jpeg;base64")
        assert Image.open(io.BytesIO(base64.b64decode(payload))).size == (32, 32)
    assert "Grad-CAM" in text and "Saliency" in text
    # Curves: two plotly divs side by side, the AUC table with formatted numbers; the picture alone.
    assert len([a for tag, a in parsed.elements if "plotly-graph-div" in a.get("class", "")]) == 3
    assert len([a for tag, a in parsed.elements if a.get("class") == "figure-row"]) == 1
    assert "0.317" in text and "0.500" in text


def test_no_reference_to_any_external_url(hostile_html):
    parsed = parse(hostile_html)
    for tag, attributes in parsed.elements:
        assert tag not in ("link", "iframe", "object", "embed", "base"), tag
        for name, value in attributes.items():
            if name in URL_ATTRIBUTES:
                assert value.startswith(("data:", "#")), f"<{tag} {name}={value[:80]}>"
    assert all(not a.get("src") for tag, a in parsed.elements if tag == "script")  # every script is inline
    for css in parsed.styles:
        assert "url(" not in css and "@import" not in css
    figure_scripts = [s for s in parsed.scripts if "Plotly.newPlot" in s]
    assert len(figure_scripts) == 3
    assert not any(re.search(r"https?://", script) for script in figure_scripts)


def test_plotly_js_is_inlined_once_in_the_head(hostile_html):
    head = hostile_html.split("</head>", 1)[0]
    assert head.count("<script>") == 1 and len(head) > 3_000_000  # plotly.min.js
    assert hostile_html.count("plotly.js v") <= 2  # the library's own banner, once (plus its license comment)
    body = hostile_html.split("</head>", 1)[1]
    assert len(body) < 200_000


def test_a_report_without_figures_carries_no_plotly_js():
    report = reports.Report.assemble("just images", [gallery(hostile_bundle())])
    html = reports.render_report(report)
    assert len(html) < 100_000 and "Plotly" not in html


def test_hostile_text_is_shown_as_text_never_as_markup(hostile_html):
    parsed = parse(hostile_html)
    # The only script elements are plotly.js and the figures' draw calls; the only img elements are the embedded images.
    assert len(parsed.scripts) == 4
    assert all(a["src"].startswith("data:image/") and "onerror" not in a for tag, a in parsed.elements if tag == "img")
    assert not any(name.startswith("on") for _, a in parsed.elements for name in a)
    text = "".join(parsed.text)
    assert f"Title {HOSTILE}" in text  # h1, shown literally
    assert f"Author {HOSTILE_IMG}" in text
    assert f"About {HOSTILE}" in text and f"desc {HOSTILE}" in text
    assert f"a{HOSTILE}.png" in text  # file name
    assert f"cls1 {HOSTILE_IMG}" in text  # class name from the model
    assert f"tiny{HOSTILE}" in text and f"weights {HOSTILE}" in text
    assert f"lower is better {HOSTILE}" in text and f"curve {HOSTILE}" in text  # table caption and cell
    assert "<script>alert" not in hostile_html and "<img src=x" not in hostile_html
    # Inside the figure's script, the label only appears with < > / escaped.
    assert "\\u003cscript\\u003ealert" in parsed.scripts[1]


def test_header_records_model_data_methods_settings_and_versions(hostile_html):
    text = "".join(parse(hostile_html).text)
    bundle = hostile_bundle()
    assert bundle.model_id in text and "cpu" in text and "2 classes" in text
    assert "2 image(s)" in text and "b.png" in text
    assert "Grad-CAM (gradcam, aug_smooth=False, eigen_smooth=False)" in text and "Saliency (saliency)" in text
    for name in ("python", "torch", "captum", "plotly", "numpy"):
        assert re.search(rf"{name} \d+\.\d+", text), name
    assert re.search(r"Created \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert "colormap" in text and "jet" in text  # the gallery's display settings


def test_sections_keep_the_chosen_order_and_the_report_needs_one():
    bundle = hostile_bundle()
    report = reports.Report.assemble("order", [curves("b"), gallery(bundle)])
    keys = re.findall(r'data-key="(\w+)"', reports.render_report(report))
    assert keys == ["curves", "gallery"]
    with pytest.raises(ValueError):
        reports.Report.assemble("empty", [])


def test_blocks_refuse_inconsistent_shapes():
    with pytest.raises(ValueError):
        reports.ImageGrid(("a", "b"), ("r",), ((np.zeros((4, 4, 3), np.uint8),),))
    with pytest.raises(ValueError):
        reports.ImageGrid(("a",), ("r",), ((np.zeros((4, 4), np.float32),),))
    with pytest.raises(ValueError):
        reports.Table(("a", "b"), ((1,),))


def test_sixteen_images_by_six_methods_with_curves_stay_small_and_fast():
    """Size budget of the issue: 16 images x 6 methods + curves < 15 MB, written in seconds."""
    import explain
    from explain.analyses import AttributionMaps, AttributionResult, ImageRef, ImagesView, Subject
    from explain.methods.registry import MethodSpec

    bundle = hostile_bundle()
    rng = np.random.default_rng(0)
    photos = [np.asarray(explain.load_sample(n).resize((224, 224))) for n in explain.sample_names()]
    display = np.stack([photos[i % len(photos)] for i in range(16)])
    methods = ["gradcam", "saliency", "integrated_gradients", "smoothgrad", "vargrad", "occlusion"]
    smooth = lambda: np.kron(rng.random((16, 14, 14)), np.ones((16, 16))).astype(np.float32)  # noqa: E731
    maps = {m: smooth() for m in methods}
    top5 = ((((0, bundle.class_names[0], 0.7), (1, bundle.class_names[1], 0.3))),) * 16
    names = tuple(f"img{i}.jpg" for i in range(16))
    subject = Subject(bundle.model_id, bundle.name, tuple(ImageRef(n, f"d{i}") for i, n in enumerate(names)), (0,) * 16)
    view = ImagesView(names, display, top5, (0,) * 16, (bundle.class_names[0],) * 16)
    analysis = AttributionMaps(subject, tuple(MethodSpec.of(m) for m in methods))
    result = AttributionResult(analysis, view, bundle.card, maps, {m: frozenset(range(16)) for m in methods})
    section = reports.gallery_section(result, DisplaySettings())
    x = np.linspace(0, 1, 101)
    figures = []
    for metric in ("Deletion", "Insertion", "SIC", "AIC"):
        figure = go.Figure([go.Scatter(x=x, y=rng.random(101), name=m) for m in methods])
        figure.update_layout(title=metric)
        figures.append(reports.Figure.of(figure))
    report = reports.Report.assemble("big", [section, reports.Section("curves", "Curves", tuple(figures))])
    html = reports.render_report(report)  # its time is measured in bench/bench_reports.py
    size = len(html.encode("utf-8"))
    assert size < 15 * 2**20, size
    assert html.count("<img ") == 16 * 7


def test_figure_images_are_stored_as_jpeg_not_as_pixel_arrays():
    import json

    photo = np.asarray(Image.new("RGB", (200, 120), (200, 30, 30)))
    figure = go.Figure([go.Image(z=photo), go.Scatter(x=[0, 199], y=[0, 119])])
    block = reports.Figure.of(figure)
    traces = json.loads(block.figure_json)["data"]
    assert "z" not in traces[0] and traces[0]["source"].startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(traces[0]["source"].split(",", 1)[1])))
    assert decoded.size == (200, 120)  # same pixel grid: axes and overlays still match
    assert np.abs(np.asarray(decoded).astype(int) - photo).max() < 12
    assert figure.data[0].z is not None  # the caller's figure is left as it was
    assert len(block.figure_json) < len(figure.to_json()) / 4
