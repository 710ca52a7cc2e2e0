"""Report sections of the faithfulness metrics (deletion/insertion, SIC/AIC): the tables
carry the metrics' own numbers, the best method follows each metric's direction, and
the CLI builds every section end to end (tiny CNN, sample photos at 32 px)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import explain
import reports
from explain.analyses import MetricAnalysis, prepare_images, run_directly
from explain.methods.registry import MethodSpec
from explain.metrics import AIC, DELETION, INSERTION, SIC, deletion_insertion, pic_metrics, random_seed_masks
from reports import cli
from tests.report_samples import HOSTILE, hostile_bundle, patch_photo
from reports import build_section

METHODS = ("gradcam", "saliency")
NAMES = [f"red {HOSTILE}.png", "b.png", "c.png"]


@pytest.fixture(scope="module")
def setup():
    bundle = hostile_bundle()
    prepared = prepare_images(bundle, [explain.NamedImage(n, patch_photo(i)) for i, n in enumerate(NAMES)])
    return prepared, tuple(MethodSpec.of(m) for m in METHODS)


def metric_result(setup, metric: str, **params):
    prepared, specs = setup
    return run_directly(MetricAnalysis.of(metric, prepared.subject(), specs, params), prepared)


def table_of(section: reports.Section) -> reports.Table:
    return next(b for b in section.blocks if b.kind == "table")


def test_deletion_insertion_section_carries_the_metric_numbers(setup):
    prepared, _ = setup
    result = metric_result(setup, "deletion_insertion", steps=8)
    direct = deletion_insertion(
        prepared.bundle,
        prepared.batch,
        {m: explain.attribute(prepared.bundle, prepared.batch, m) for m in METHODS},
        list(result.images.targets),
        steps=8,
    )
    section = build_section(result)
    assert section.key == "deletion_insertion"
    assert [b.kind for b in section.blocks] == ["figure", "figure", "table"]
    table = table_of(section)
    rows = {row[0]: row for row in table.rows}
    assert set(rows) == {"Grad-CAM", "Saliency"}
    deletion_col, insertion_col = table.columns.index(DELETION.name), table.columns.index(INSERTION.name)
    for key, label in (("gradcam", "Grad-CAM"), ("saliency", "Saliency")):
        assert rows[label][deletion_col] == pytest.approx(direct.deletion[key].score)
        assert rows[label][insertion_col] == pytest.approx(direct.insertion[key].score)
        assert rows[label][table.columns.index(f"{DELETION.name} s.e.")] == pytest.approx(direct.deletion[key].spread)
    best_deletion = min(direct.deletion, key=lambda k: direct.deletion[k].score)
    label = explain.get_method(best_deletion).label
    assert f"{DELETION.name}: lower is better, best {label}" in table.caption
    settings = dict(section.context.settings)
    assert settings["Deletion substrate"] == "zero" and settings["Steps"] == "8"
    assert NAMES[0] in settings["classes explained"]
    assert [m.key for m in section.context.methods] == ["gradcam", "saliency"]


def test_sic_aic_section_carries_the_metric_numbers_and_skips(setup):
    prepared, _ = setup
    result = metric_result(setup, "sic_aic")
    n, _, h, w = prepared.batch.shape
    maps = {m: explain.attribute(prepared.bundle, prepared.batch, m) for m in METHODS}
    direct = pic_metrics(
        prepared.bundle, prepared.batch, maps, random_seed_masks(n, h, w, seed=0), list(result.images.targets)
    )
    section = build_section(result)
    assert section.key == "sic_aic" and [b.kind for b in section.blocks] == ["figure", "figure", "table"]
    table = table_of(section)
    rows = {row[0]: row for row in table.rows}
    for key, label in (("gradcam", "Grad-CAM"), ("saliency", "Saliency")):
        values = rows[label]
        for score, curves in ((SIC, direct.sic[key]), (AIC, direct.aic[key])):
            value = values[table.columns.index(score.name)]
            assert value == pytest.approx(curves.score) or (np.isnan(value) and np.isnan(curves.score))
    assert "SIC AUC: higher is better" in table.caption
    for skipped in direct.sic["gradcam"].skipped:
        assert f"skipped {NAMES[skipped.index]}" in section.description
    assert dict(section.context.settings)["Random seed"] == "0"


def test_cli_builds_every_metric_section(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(explain, "load_model", lambda name, device=None: hostile_bundle())
    out = tmp_path / "r.html"
    code = cli.main(["build", "--images", "chelsea,coffee", "--methods", "gradcam,saliency",
                     "--sections", "gallery,deletion_insertion,sic_aic", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Deletion & insertion" in err and "SIC / AIC" in err
    html = out.read_text()
    assert re.findall(r'data-key="(\w+)"', html) == ["gallery", "deletion_insertion", "sic_aic"]
    assert html.count('class="plotly-graph-div"') == 4
    assert "Deletion AUC s.e." in html and "SIC AUC" in html
