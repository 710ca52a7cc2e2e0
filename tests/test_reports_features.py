"""Report sections of the SHAP summary and of ROAR: built from the features' plain
results, they carry their numbers and render with hostile names as text.
Each test runs once its feature's backend is installed (merged)."""

from __future__ import annotations

import numpy as np
import pytest

import explain
import reports
from tests.report_samples import HOSTILE, hostile_bundle
from reports import build_section


def test_shap_summary_section_from_the_analysis_result():
    from explain.analyses import ShapSummary, prepare_images, run_directly
    from explain.methods.registry import MethodSpec
    from tests.report_samples import patch_photo

    bundle = hostile_bundle()
    names = [f"img{i}{HOSTILE}" for i in range(3)]
    prepared = prepare_images(bundle, [explain.NamedImage(n, patch_photo(i)) for i, n in enumerate(names)])
    result = run_directly(
        ShapSummary(prepared.subject(), MethodSpec.of("shap_gradient", {"n_samples": 4}), top_k=2), prepared
    )
    summary = result.summary(4)
    section = build_section(result, cells=4)
    assert section.key == "shap_summary"
    assert [b.kind for b in section.blocks] == ["figure"] * 5 + ["table"]
    table = section.blocks[-1]
    assert [row[1] for row in table.rows] == [cell for cell, _ in summary.ranked(10)]
    assert table.rows[0][2] == pytest.approx(summary.mean_abs.max())
    assert dict(section.context.settings)["grid"] == "4 x 4"
    first_two = build_section(
        run_directly(
            ShapSummary(prepared.subject(), MethodSpec.of("shap_gradient", {"n_samples": 4}), top_k=2, plotted=2),
            prepared,
        ),
        cells=4,
    )
    assert [b.kind for b in first_two.blocks] == ["figure"] * 4 + [
        "table"
    ] and "the first 2 of 3" in first_two.description
    html = reports.render_report(reports.Report.assemble("shap", [section]))
    assert html.count('class="plotly-graph-div"') == 5 and "<script>alert" not in html


def test_roar_section_names_the_best_ranking_by_the_metric_direction():
    from explain.analyses import RoarAnalysis, RoarResult
    from explain.methods.registry import MethodSpec
    from explain.metrics import Curves, roar

    settings = roar.RoarSettings(methods=(MethodSpec.of("gradcam"), MethodSpec.of("smoothgrad", {"n_samples": 8})),
                                 fractions=(0.1, 0.5, 0.9))
    analysis = RoarAnalysis("d" * 16, f"MNIST subset {HOSTILE}", settings)
    x = np.array([0.0, 0.1, 0.5, 0.9])
    accuracies = {"gradcam": (0.6, 0.3, 0.1), 'smoothgrad{"n_samples":8}': (0.8, 0.5, 0.2), "random": (0.9, 0.8, 0.5)}
    curves = {k: Curves(settings.metric, k, x, [[0.95, *acc]]) for k, acc in accuracies.items()}
    result = RoarResult(analysis, "SmallCNN", 0.95, {"roar": curves}, done=9, total=9)
    section = build_section(result)
    figure, table = section.blocks
    assert figure.kind == "figure" and table.kind == "table"
    assert [row[0] for row in table.rows] == ["Grad-CAM", "SmoothGrad (n_samples=8)", "Random (baseline)"]
    expected = np.trapezoid([0.95, 0.6, 0.3, 0.1], x)
    assert table.rows[0][table.columns.index("ROAR AUC")] == pytest.approx(expected)
    assert [row[table.columns.index("50%")] for row in table.rows] == [0.3, 0.5, 0.8]
    assert "lower is better, best Grad-CAM" in table.caption  # ROAR AUC: lower is better
    assert [m.key for m in section.context.methods] == ["gradcam", "smoothgrad"]
    assert dict(section.context.methods[1].params)["n_samples"] == 8
    assert dict(section.context.settings)["variant"] == "ROAR"
    html = reports.render_report(reports.Report.assemble("roar", [section]))
    assert "MNIST subset &lt;script&gt;" in html and "<script>alert" not in html
