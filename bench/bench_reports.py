"""Report size and render time for the issue's budget: 16 images x 6 methods with
curves (< 15 MB, written in seconds). Maps are synthetic (smooth random fields over
the sample photos), so this times the report builder alone (overlays, encoding,
templates), not the attributions or metrics.

    python bench/bench_reports.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explain  # noqa: E402
import reports  # noqa: E402
from explain.plots.overlay import DisplaySettings  # noqa: E402
from tests.report_samples import hostile_bundle  # noqa: E402

METHODS = ["gradcam", "saliency", "integrated_gradients", "smoothgrad", "vargrad", "occlusion"]


def big_report(n_images: int = 16) -> reports.Report:
    rng = np.random.default_rng(0)
    bundle = hostile_bundle()
    photos = [np.asarray(explain.load_sample(n).resize((224, 224))) for n in explain.sample_names()]
    display = np.stack([photos[i % len(photos)] for i in range(n_images)])
    maps = {m: np.kron(rng.random((n_images, 14, 14)), np.ones((16, 16))).astype(np.float32) for m in METHODS}
    top5 = [[(0, bundle.class_names[0], 0.7), (1, bundle.class_names[1], 0.3)]] * n_images
    gallery = reports.gallery_section(bundle, [f"img{i}.jpg" for i in range(n_images)], display, maps,
                                      {m: {} for m in METHODS}, None, top5, DisplaySettings())
    x = np.linspace(0, 1, 101)
    figures = []
    for metric in ("Deletion", "Insertion", "SIC", "AIC"):
        figure = go.Figure([go.Scatter(x=x, y=np.sort(rng.random(101)), name=m) for m in METHODS])
        figure.update_layout(title=metric)
        figures.append(reports.Figure.of(figure))
    table = reports.Table(
        ("method", "deletion AUC", "insertion AUC"), tuple((m, rng.random(), rng.random()) for m in METHODS)
    )
    return reports.Report.assemble("bench", [gallery, reports.Section("curves", "Curves", (*figures, table))])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    build_times, render_times, size = [], [], 0
    for _ in range(args.repeats):
        start = time.perf_counter()
        report = big_report()  # sections: 96 heatmap overlays, 4 figures, a table
        middle = time.perf_counter()
        size = len(reports.render_report(report).encode("utf-8"))
        render_times.append(time.perf_counter() - middle)
        build_times.append(middle - start)
    budget = 15 * 2**20
    print(f"16 images x 6 methods + 4 curve figures + AUC table: {size / 2**20:.2f} MB "
          f"({size / budget:.0%} of the 15 MB budget); median over {args.repeats} runs: "
          f"sections {statistics.median(build_times):.2f} s, HTML {statistics.median(render_times):.2f} s, "
          f"total {statistics.median(b + r for b, r in zip(build_times, render_times, strict=True)):.2f} s")


if __name__ == "__main__":
    main()
