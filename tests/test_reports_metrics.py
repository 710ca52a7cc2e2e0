"""Report sections of the faithfulness metrics (deletion/insertion, SIC/AIC): the tables
carry the metrics' own numbers, the best method follows each metric's direction, and
the CLI builds every section end to end (tiny CNN, sample photos at 32 px)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import explain
import reports
from explain.metrics import DELETION, INSERTION, deletion_insertion, pic_metrics, random_seed_masks
from reports import cli
from tests.report_samples import HOSTILE, hostile_bundle
from tests.synthetic import patch_image

METHODS = {"gradcam": {}, "saliency": {}}
NAMES = [f"red {HOSTILE}.png", "b.png", "c.png"]


@pytest.fixture(scope="module")
def setup():
    bundle = hostile_bundle()
    batch = torch.cat([patch_image(seed=i) for i in range(3)])
    maps = {m: explain.attribute(bundle, batch, m) for m in METHODS}
    return bundle, batch, maps


def table_of(section: reports.Section) -> reports.Table:
    return next(b for b in section.blocks if b.kind == "table")


def test_deletion_insertion_section_carries_the_metric_numbers(setup):
    bundle, batch, maps = setup
    result = deletion_insertion(bundle, batch, maps, None, steps=8)
    section = reports.sections.deletion_insertion_section(bundle, NAMES, result, METHODS)
    assert section.key == "deletion_insertion"
    assert [b.kind for b in section.blocks] == ["figure", "figure", "table"]
    table = table_of(section)
    rows = {row[0]: row for row in table.rows}
    assert set(rows) == {"Grad-CAM", "Saliency"}
    deletion_col = table.columns.index(f"{DELETION.name} (mean)")
    insertion_col = table.columns.index(f"{INSERTION.name} (mean)")
    for key, label in (("gradcam", "Grad-CAM"), ("saliency", "Saliency")):
        assert rows[label][deletion_col] == pytest.approx(result.deletion[key].mean_auc)
        assert rows[label][insertion_col] == pytest.approx(result.insertion[key].mean_auc)
    best_deletion = min(result.deletion, key=lambda k: result.deletion[k].mean_auc)
    label = explain.get_method(best_deletion).label
    assert f"{DELETION.name}: lower is better, best {label}" in table.caption
    settings = dict(section.context.settings)
    assert settings["substrate"] == "zero" and settings["steps"] == "8"
    assert NAMES[0] in settings["classes explained"]
    assert [m.key for m in section.context.methods] == ["gradcam", "saliency"]


def test_sic_aic_section_carries_the_metric_numbers_and_skips(setup):
    bundle, batch, maps = setup
    n, _, h, w = batch.shape
    result = pic_metrics(bundle, batch, maps, random_seed_masks(n, h, w, seed=0), None)
    section = reports.sections.sic_aic_section(bundle, NAMES, result, METHODS, {"seed": 0})
    assert section.key == "sic_aic" and [b.kind for b in section.blocks] == ["figure", "figure", "table"]
    table = table_of(section)
    rows = {row[0]: row for row in table.rows}
    for key, label in (("gradcam", "Grad-CAM"), ("saliency", "Saliency")):
        values = rows[label]
        assert values[1] == pytest.approx(result.sic[key].auc) or np.isnan(result.sic[key].auc)
        assert values[2] == pytest.approx(result.aic[key].auc) or np.isnan(result.aic[key].auc)
    assert "SIC AUC: higher is better" in table.caption
    for skipped in result.sic["gradcam"].skipped:
        assert f"skipped {NAMES[skipped.index]}" in section.description
    assert dict(section.context.settings)["seed"] == "0"


def test_cli_builds_every_metric_section(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(explain, "load_model", lambda name, device=None: hostile_bundle())
    out = tmp_path / "r.html"
    code = cli.main(["build", "--images", "chelsea,coffee", "--methods", "gradcam,saliency",
                     "--sections", "gallery,deletion_insertion,sic_aic", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "deletion/insertion" in err and "SIC/AIC" in err
    html = out.read_text()
    assert re.findall(r'data-key="(\w+)"', html) == ["gallery", "deletion_insertion", "sic_aic"]
    assert html.count('class="plotly-graph-div"') == 4
    assert "Deletion AUC (mean)" in html and "SIC AUC" in html
