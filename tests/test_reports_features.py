"""Report sections of the SHAP summary and of ROAR: built from the features' plain
results, they carry their numbers and render with hostile names as text.
Each test runs once its feature's backend is installed (merged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explain
import reports
from tests.report_samples import HOSTILE, hostile_bundle
from tests.synthetic import patch_image


def test_shap_summary_section_from_the_grid_summary():
    from explain.analyses import shap_grid as shap_summary

    bundle = hostile_bundle()
    batch = torch.cat([patch_image(seed=i) for i in range(3)])
    display = bundle.to_display(batch)
    top5 = bundle.top_k(batch, 2)
    classes = shap_summary.top_classes(top5, 2)
    # Any signed maps will do for the report: saliency of each top class, signed by input x gradient.
    per_class = np.stack([explain.attribute(bundle, batch, "input_x_gradient", classes[:, r].tolist()) for r in range(2)], axis=1)
    names = [f"img{i}{HOSTILE}" for i in range(3)]
    summary = shap_summary.summarize_grid(per_class[:, 0], display, (4, 4), image_names=names,
                                          targets=classes[:, 0].tolist(), target_names=[bundle.class_names[c] for c in classes[:, 0]])
    section = reports.sections.shap_summary_section(bundle, names, display, top5, per_class, summary, "input_x_gradient", {})
    assert section.key == "shap_summary"
    assert [b.kind for b in section.blocks] == ["figure"] * 5 + ["table"]
    table = section.blocks[-1]
    assert [row[1] for row in table.rows] == [cell for cell, _ in summary.ranked(10)]
    assert table.rows[0][2] == pytest.approx(summary.mean_abs.max())
    assert dict(section.context.settings)["grid"] == "4 x 4"
    first_two = reports.sections.shap_summary_section(bundle, names, display, top5, per_class[:2], summary, "input_x_gradient", {})
    assert [b.kind for b in first_two.blocks] == ["figure"] * 4 + ["table"] and "the first 2 of 3" in first_two.description
    html = reports.render_report(reports.Report.assemble("shap", [section]))
    assert html.count('class="plotly-graph-div"') == 5 and "<script>alert" not in html


def test_roar_section_names_the_best_ranking_by_the_metric_direction():
    from explain.metrics import roar

    settings = roar.RoarSettings(methods=(roar.MethodSpec.of("gradcam"), roar.MethodSpec.of("smoothgrad", {"n_samples": 8})),
                                 fractions=(0.1, 0.5, 0.9))
    fractions = settings.fractions

    def curve(ident, label, accuracies):
        return roar.RoarCurve(ident, label, fractions, tuple(accuracies), (0.0,) * 3, (1,) * 3,
                              roar.curve_auc(fractions, accuracies, 0.95, "roar"))

    curves = (curve("gradcam", "Grad-CAM", (0.6, 0.3, 0.1)), curve("smoothgrad", f"SmoothGrad {HOSTILE}", (0.8, 0.5, 0.2)),
              curve("random", "Random (baseline)", (0.9, 0.8, 0.5)))
    summary = roar.RoarSummary(dataset="MNIST subset", architecture="SmallCNN", mode="roar", metric=settings.metric,
                               base_accuracy=0.95, curves=curves, fractions=fractions, repeats=1, done=9, total=9, timings={})
    section = reports.sections.roar_section(summary, settings)
    figure, table = section.blocks
    assert figure.kind == "figure" and table.kind == "table"
    assert [row[0] for row in table.rows] == ["Grad-CAM", f"SmoothGrad {HOSTILE}", "Random (baseline)"]
    assert table.rows[0][-1] == pytest.approx(round(curves[0].auc, 4))
    assert "lower is better; best Grad-CAM" in table.caption  # ROAR AUC: lower is better
    assert [m.key for m in section.context.methods] == ["gradcam", "smoothgrad"]
    assert dict(section.context.methods[1].params)["n_samples"] == 8
    assert dict(section.context.settings)["variant"] == "ROAR"
    html = reports.render_report(reports.Report.assemble("roar", [section]))
    assert "SmoothGrad &lt;script&gt;" in html and "<script>alert" not in html
