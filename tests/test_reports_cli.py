"""The command line: end to end on the sample photos, and clear errors for bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import explain
from reports import cli
from reports.store import STORE_ENV, ReportStore
from tests.patience import generous

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cli_builds_and_saves_a_report_from_two_sample_photos(tmp_path):
    out = tmp_path / "report.html"
    env = {**os.environ, STORE_ENV: str(tmp_path / "store"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "reports", "build", "--model", "efficientnet_lite0", "--images", "chelsea,coffee",
         "--methods", "gradcam,saliency", "--quiet",
         "--sections", "gallery", "--out", str(out), "--save", "--title", "CLI <b>run</b>", "--device", "cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=generous(30),
    )
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert "CLI &lt;b&gt;run&lt;/b&gt;" in html
    assert html.count("<img ") == 2 * 3 and "Egyptian cat" in html and "espresso" in html
    assert "efficientnet_lite0" in html and "ImageNet-1k" in html
    lines = result.stdout.split()
    assert lines[0] == str(out) and re.fullmatch(r"/\?report=[A-Za-z0-9_-]{22}", lines[1])
    saved = ReportStore(tmp_path / "store").list()
    assert [s.title for s in saved] == ["CLI <b>run</b>"]
    assert ReportStore(tmp_path / "store").load_html(saved[0].id) == html


def test_progress_bar_and_gallery_on_a_tiny_run(tmp_path, monkeypatch, capsys, default_bundle):
    """In-process, with the session's model: the bar reaches images x methods."""
    monkeypatch.setattr(explain, "load_model", lambda name, device=None: default_bundle)
    out = tmp_path / "r.html"
    assert cli.main(["build", "--images", "coffee", "--methods", "gradcam", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "attributions" in captured.err and "1/1" in captured.err
    assert out.stat().st_size > 10_000 and "espresso" in out.read_text()


def test_images_from_a_folder_skip_bad_files_with_a_message(tmp_path, capsys):
    explain.load_sample("coffee").resize((40, 30)).save(tmp_path / "b.png")
    explain.load_sample("chelsea").resize((40, 30)).save(tmp_path / "a.jpg")
    (tmp_path / "c.png").write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("ignored")
    images = cli.load_images(str(tmp_path))
    assert [im.name for im in images] == ["a.jpg", "b.png"]
    assert "c.png" in capsys.readouterr().err
    assert [im.name for im in cli.load_images(str(tmp_path), max_images=1)] == ["a.jpg"]
    assert [im.name for im in cli.load_images("samples")] == list(cli.DEFAULT_SAMPLES)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--images", "no_such_thing"], "not a folder"),
        (["--sections", "gallery,nonsense"], "unknown section"),
        (["--methods", "nonsense"], "Unknown method"),
        (["--methods", "gradcam", "--param", "gradcam"], "METHOD.NAME=VALUE"),
    ],
)
def test_bad_arguments_give_a_message_and_status_2(args, message, capsys, tmp_path):
    assert cli.main(["build", "--out", str(tmp_path / "x.html"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_params_are_checked_by_the_registry():
    params = cli.parse_params(["smoothgrad.n_samples=4"], ["smoothgrad", "gradcam"])
    assert params["smoothgrad"]["n_samples"] == 4 and params["smoothgrad"]["noise_level"] == 0.15
    assert params["gradcam"] == {"aug_smooth": False, "eigen_smooth": False}  # the registry's defaults
    with pytest.raises(ValueError):
        cli.parse_params(["smoothgrad.n_samples=0"], ["smoothgrad"])
    with pytest.raises(ValueError):
        cli.parse_params(["smoothgrad.no_such_param=1"], ["smoothgrad"])
    with pytest.raises(cli.UsageError):
        cli.parse_params(["gradcam.x=1"], ["smoothgrad"])


@pytest.mark.slow
def test_cli_explains_your_own_state_dict_with_class_names(tmp_path, capsys):
    """A user's resnet18 with 3 classes, read with weights_only; its class names reach the report."""
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "mine.pth")
    (tmp_path / "classes.txt").write_text("cat <b>\ncup\nrocket\n")
    out = tmp_path / "r.html"
    code = cli.main(["build", "--weights", str(tmp_path / "mine.pth"), "--arch", "resnet18", "--class-names",
                     str(tmp_path / "classes.txt"), "--images", "coffee", "--methods", "gradcam", "--device", "cpu",
                     "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    html = out.read_text()
    assert "resnet18 (mine.pth)" in html and "uploaded state dict mine.pth (sha256" in html
    assert "3 classes" in html and any(
        f"class {i}: {n}" in html for i, n in enumerate(["cat &lt;b&gt;", "cup", "rocket"])
    )
    assert cli.main(["build", "--weights", str(tmp_path / "mine.pth"), "--out", str(tmp_path / "x.html")]) == 2
    assert "--arch" in capsys.readouterr().err
    assert cli.main(["build", "--weights", str(tmp_path / "classes.txt"), "--arch", "resnet18", "--num-classes", "3",
                     "--images", "coffee", "--out", str(tmp_path / "x.html")]) == 2
    assert "classes.txt" in capsys.readouterr().err and not (tmp_path / "x.html").exists()


def test_cli_builds_shap_and_roar_sections_and_rebuilds_a_report_from_stored_jobs(tmp_path, monkeypatch, capsys):
    """The CLI runs the same analyses as the pages, SHAP summary and ROAR included, and
    `--jobs` assembles a report from stored results with no model and no compute."""
    from explain.analyses import maps as maps_module
    from explain.data import training
    from tests.report_samples import hostile_bundle
    from tests.test_roar import patch_dataset

    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))  # a store holding this run's jobs only
    monkeypatch.setattr(explain, "load_model", lambda name, device=None: hostile_bundle())
    monkeypatch.setattr(training, "mnist_subset", lambda: patch_dataset(n=96))
    out = tmp_path / "r.html"
    code = cli.main(
        [
            "build",
            "--images",
            "chelsea,coffee",
            "--methods",
            "saliency",
            "--sections",
            "gallery,shap_summary,irof,roar",
            "--param",
            "irof.n_segments=8",
            "--roar-methods",
            "saliency",
            "--roar-fractions",
            "50",
            "--roar-epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    html = out.read_text()
    assert re.findall(r'data-key="(\w+)"', html) == ["gallery", "shap_summary", "irof", "roar"]
    capsys.readouterr()
    assert cli.main(["jobs"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == 4
    monkeypatch.setattr(explain, "load_model", lambda *a, **k: pytest.fail("no model for stored jobs"))
    monkeypatch.setattr(maps_module, "attribute", lambda *a, **k: pytest.fail("nothing is recomputed"))
    again = tmp_path / "again.html"
    assert cli.main(["build", "--jobs", ",".join(listed), "--out", str(again), "--quiet"]) == 0
    assert sorted(re.findall(r'data-key="(\w+)"', again.read_text())) == ["gallery", "irof", "roar", "shap_summary"]
    assert cli.main(["build", "--jobs", "0123456789abcdef01234567", "--out", str(tmp_path / "x.html")]) == 2
    assert "no stored job" in capsys.readouterr().err
