"""Model comparison, the mistakes browser and PDF export (issue 23): a model compared with
itself, two checkpoints of the small CNN (1 and 3 epochs) on held-out MNIST digits, the
comparison and mistakes of a results directory read without computing, the Compare
models and Mistakes pages, and the report CLI's sections printed to PDF."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import explain
from explain.analyses import (
    ClassChoice, MistakesAnalysis, ModelComparison, comparison_from_results, mistakes_from_results, prepare_images,
    run_directly,
)
from explain.analyses.compare import MEASURES
from explain.evaluation import DataSource, Evaluation, EvaluationInputs, ExecutionOptions, MetricChoice, model_sources
from explain.evaluation.cli import main as explain_main
from explain.evaluation.sources import load_bundle
from explain.methods.registry import MethodSpec
from reports.sections_compare import compare_section, mistakes_section
from tests.report_samples import hostile_bundle, patch_photo

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
METHODS = (MethodSpec.of("saliency"), MethodSpec.of("gradcam"))
IMAGES = 48


def tiny_images(n: int = 3) -> list[explain.NamedImage]:
    return [explain.NamedImage(f"patch{i}.png", patch_photo(i)) for i in range(n)]


# ---------------------------------------------------------------------- a model with itself
def test_a_model_compared_with_itself_has_similarity_one_everywhere_and_no_disagreements():
    bundle = hostile_bundle()
    prepared = prepare_images(bundle, tiny_images())
    subject = prepared.subject()
    result = run_directly(ModelComparison((subject, subject, subject), METHODS), (prepared, prepared, prepared))
    assert result.complete and result.models == (bundle.name,) * 3
    for spec in METHODS:
        for measure in MEASURES:
            assert np.allclose(result.similarity[spec.ident][measure], 1.0), (spec.key, measure)
    assert result.disagreements() == [] and result.agreement.all()
    table = result.pair_table()
    assert len(table) == 2 * 3 and np.allclose(table[["Spearman |map|", "SSIM", "HOG", "top-1 agreement"]], 1.0)
    assert np.allclose(result.drift()["similarity"], 1.0)
    section = compare_section(result)
    assert section.key == "compare"
    assert [b.kind for b in section.blocks] == ["figure", "table", "image_grid", "image_grid"]


def test_a_comparison_needs_two_models_on_the_same_images():
    bundle = hostile_bundle()
    a = prepare_images(bundle, tiny_images(2)).subject()
    b = prepare_images(bundle, tiny_images(3)).subject()
    with pytest.raises(ValueError, match="at least two"):
        ModelComparison((a,), METHODS)
    with pytest.raises(ValueError, match="same images"):
        ModelComparison((a, b), METHODS)


def test_finished_comparison_and_mistakes_jobs_are_rebuilt_from_disk_after_a_restart(tmp_path):
    from explain.jobs.runner import JobRunner
    from explain.jobs.store import JobStore
    from explain.methods.cache import default_cache

    default_cache().clear()  # maps other tests computed without a store would be found in memory, never stored
    bundle = hostile_bundle()
    prepared = prepare_images(bundle, tiny_images())
    labels = [1 - row[0][0] for row in prepared.top5]  # every image wrong
    comparison = ModelComparison((prepared.subject(), prepared.subject()), METHODS)
    mistakes = MistakesAnalysis((prepared.subject(ClassChoice("label"), labels),), METHODS)
    runner = JobRunner(JobStore(tmp_path / "store"))
    first = [runner.submit(comparison, (prepared, prepared)), runner.submit(mistakes, (prepared,))]
    assert all(job.wait(120) and job.state == "done" for job in first)
    default_cache().clear()  # the maps must come back from disk
    restarted = JobRunner(JobStore(tmp_path / "store"))
    again = [restarted.find(comparison), restarted.find(mistakes)]
    assert all(job is not None and job.state == "done" for job in again)
    for spec in METHODS:
        assert np.array_equal(again[0].result.maps[spec.ident], first[0].result.maps[spec.ident])
        before, after = first[1].result.image_maps(0, 1), again[1].result.image_maps(0, 1)
        assert np.array_equal(before.true[spec.ident], after.true[spec.ident])
    assert again[1].result.table.equals(first[1].result.table)


# ---------------------------------------------------------------------- the mistakes analysis
def test_mistakes_analysis_explains_each_wrong_image_for_its_predicted_and_true_class():
    bundle = hostile_bundle()
    prepared = prepare_images(bundle, tiny_images(4))
    top1 = [row[0][0] for row in prepared.top5]
    labels = [1 - top1[0], top1[1], 1 - top1[2], top1[3]]  # images 0 and 2 wrong
    analysis = MistakesAnalysis((prepared.subject(ClassChoice("label"), labels),), (MethodSpec.of("gradcam"),))
    result = run_directly(analysis, (prepared,))
    wrong = result.listed(0)
    assert sorted(wrong["image_index"]) == [0, 2] and not wrong["correct"].any()
    assert int(result.confusion(0).to_numpy().sum()) == 4
    direct = {t: explain.attribute(bundle, prepared.batch[[0]], "gradcam", [t])[0] for t in (0, 1)}
    maps = result.image_maps(0, 0)
    assert np.allclose(maps.predicted["gradcam"], direct[top1[0]], atol=1e-5)
    assert np.allclose(maps.true["gradcam"], direct[1 - top1[0]], atol=1e-5)
    assert result.image_maps(0, 1).predicted["gradcam"] is None  # right answers are not explained
    section = mistakes_section(result, 0)
    assert section.key == "mistakes" and any(b.kind == "image_grid" for b in section.blocks)


# ---------------------------------------------------------------------- two checkpoints of the small CNN
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpts")
    assert explain_main(["train-small-cnn", "--epochs", "1,3", "--out", str(folder), "--threads", "1"]) == 0
    return folder


@pytest.fixture(scope="module")
def results(checkpoints, tmp_path_factory):
    """Epochs 1 and 3 on 48 held-out digits, Saliency and Grad-CAM, maps kept."""
    models = model_sources(weights=[str(checkpoints / "*.pt")], arch="small_cnn")
    settings = Evaluation.of(models, DataSource.of("mnist", IMAGES), METHODS,
                             (MetricChoice.of("deletion_insertion", {"steps": 4}),), chunk_size=16, save_maps=True,
                             out=tmp_path_factory.mktemp("results") / "two-checkpoints")
    result = run_directly(settings, EvaluationInputs("local", ExecutionOptions(device="cpu", threads=1)))
    assert result.complete
    return result


@pytest.mark.slow
def test_checkpoints_maps_are_less_alike_where_the_prediction_changed(checkpoints):
    sources = model_sources(weights=[str(checkpoints / "*.pt")], arch="small_cnn")
    bundles = [load_bundle(s, s.read(), "cpu") for s in sources]
    with DataSource.of("mnist", IMAGES).open() as index:
        images = [raw.decode() for raw in index.raw(range(len(index)))]
    prepared = tuple(prepare_images(b, images) for b in bundles)
    result = run_directly(ModelComparison(tuple(p.subject() for p in prepared), METHODS), prepared)
    changed = np.array(result.disagreements())
    assert 3 <= len(changed) <= IMAGES - 3  # both kinds present, or the test would prove nothing
    kept = np.setdiff1d(np.arange(IMAGES), changed)
    for spec in METHODS:
        values = result.similarity[spec.ident]["spearman_abs"][0, 1]
        assert values[changed].mean() < values[kept].mean() - 0.1, spec.key
    drift = result.drift()
    assert (drift.groupby("method")["similarity"].last() == 1.0).all()


@pytest.mark.slow
def test_a_results_directory_is_compared_from_its_stored_maps_without_computing(results, monkeypatch):
    import explain.methods.registry as registry

    def refuse(*args, **kwargs):
        raise AssertionError("a stored comparison must not compute maps")

    monkeypatch.setattr(registry, "attribute", refuse)
    result = comparison_from_results(results)
    assert result.models == tuple(results.models) and len(result.image_names) == IMAGES
    rows = results.rows.drop_duplicates(["model_index", "image_index"])
    for k in range(2):
        predicted = rows[rows["model_index"] == k].sort_values("image_index")["prediction"].to_numpy()
        assert (result.top1[k] == predicted).all()
    stored = results.store.chunk_maps(1, 0)
    assert np.array_equal(result.maps["gradcam"][1, :16], stored["map:gradcam"])
    changed = result.disagreements()
    assert changed and result.agreement[0, 1].sum() == IMAGES - len(changed)


@pytest.mark.slow
def test_the_mistakes_of_a_results_directory_are_exactly_its_wrong_rows(results):
    mistakes = mistakes_from_results(results)
    rows = results.rows.drop_duplicates(["model_index", "image_index"])
    for model in range(2):
        wrong = rows[(rows["model_index"] == model) & (rows["correct"] == False)]  # noqa: E712
        assert len(wrong), "the 1-epoch model makes mistakes on 48 digits"
        pairs = mistakes.mistakes_by_pair(model)
        assert pairs["images"].sum() == len(wrong)
        for true, predicted in zip(pairs["true"], pairs["predicted"], strict=True):
            expected = wrong[(wrong["label"] == true) & (wrong["prediction_name"] == predicted)]["image_index"]
            assert sorted(mistakes.listed(model, true, predicted)["image_index"]) == sorted(expected)
        confident = mistakes.listed(model, min_confidence=0.6)
        assert sorted(confident["image_index"]) == sorted(wrong[wrong["probability"] >= 0.6]["image_index"])
    disagree = mistakes.listed(1, disagree=True, wrong_only=False)
    by_image = rows.pivot(index="image_index", columns="model_index", values="prediction")
    assert sorted(disagree["image_index"]) == sorted(by_image.index[by_image[0] != by_image[1]])
    maps = mistakes.image_maps(1, int(mistakes.listed(1).iloc[0]["image_index"]))
    assert maps.display.shape == (28, 28, 3) and maps.predicted["gradcam"].shape == (28, 28)
    assert maps.true["gradcam"] is None  # the run explained each image's top-1: the true class's map was not kept


# ---------------------------------------------------------------------- pages
def open_run(at: AppTest, file: str, page: str, run: Path) -> None:
    at.switch_page(f"pages/{file}.py")
    at.run()
    assert not at.exception
    at.radio(key=f"{page}:source").set_value(at.radio(key=f"{page}:source").options[1]).run()
    at.selectbox(key=f"{page}:own").set_value(str(run)).run()
    [b for b in at.button if b.label == "Open"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def unescaped(markdown: str) -> str:
    """What a reader sees of a markdown string escaped by `pages.ui.text.plain`."""
    return re.sub(r"\\(.)", r"\1", markdown)


@pytest.mark.slow
def test_compare_and_mistakes_pages_open_a_run_and_add_it_to_the_report(results, tmp_path, monkeypatch):
    from explain.evaluation import runs_dir

    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))
    run = runs_dir() / "two-checkpoints"
    shutil.copytree(results.root, run)
    at = AppTest.from_file(str(APP), default_timeout=180)
    open_run(at, "compare_models", "compare", run)
    table = at.dataframe[0].value
    assert set(table["model A"]) == {"small_cnn-e1.pt"} and set(table["model B"]) == {"small_cnn-e3.pt"}
    assert len(at.get("plotly_chart")) == 2 and [unescaped(h.value) for h in at.subheader] == ["Saliency", "Grad-CAM"]
    [b for b in at.button if b.label == "Add to report"][0].click().run()
    assert not at.exception

    open_run(at, "mistakes", "mistakes", run)
    mistakes = mistakes_from_results(results)
    true, predicted = mistakes.mistakes_by_pair(1).iloc[0][["true", "predicted"]]
    at.selectbox(key="mistakes:true").set_value(true).run()
    at.selectbox(key="mistakes:predicted").set_value(predicted).run()
    assert not at.exception
    listed = len(mistakes.listed(1, true, predicted))
    assert any(m.value.startswith(f"**{listed} mistake(s)**") for m in at.markdown)
    [b for b in at.button if b.label == "Add to report"][0].click().run()
    sections = at.session_state["report_draft"].sections
    assert [s.section.title for s in sections] == ["Model comparison", "Mistakes"]
    assert f"true {true} → predicted {predicted}" in dict(sections[1].section.context.settings)["cell"]


@pytest.mark.parametrize("page", ["pages/compare_models.py", "pages/mistakes.py"])
def test_a_locked_session_reads_no_server_checkpoints_and_gets_no_uploader(page):
    key = "compare" if "compare" in page else "mistakes"
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.secrets.update({"explain": {"upload_password": "s3cret", "data_roots": [str(ROOT)]}})
    at.switch_page(page).run()
    assert not at.exception and not list(at.get("file_uploader"))
    at.text_input(key=f"{key}:glob").set_value("*.pt")
    [b for b in at.get("button") if getattr(b, "label", "") == "Run"][0].click().run()
    assert any("upload access" in i.value for i in at.info), [i.value for i in at.info]


# ---------------------------------------------------------------------- report CLI and PDF
def pdf_pages(path: Path, out: Path) -> tuple[int, str]:
    """(pages rendered by pdftoppm, the text pdftotext finds)."""
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(path), str(out / "page")], check=True, timeout=120)
    text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True, timeout=120).stdout
    return len(list(out.glob("page-*.png"))), text


@pytest.mark.slow
def test_report_cli_prints_compare_and_mistakes_sections_to_a_pdf(results, tmp_path):
    from reports import cli

    html, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    assert cli.main(["build", "--sections", "compare,mistakes,benchmark", "--results", str(results.root),
                     "--out", str(html), "--pdf", "--quiet", "--title", "Two checkpoints"]) == 0
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    declared = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    rendered, text = pdf_pages(pdf, tmp_path)
    assert declared >= 4 and rendered == declared
    for title in ("Two checkpoints", "Model comparison", "Mistakes", "Benchmark across checkpoints"):
        assert title in text, title
    assert "plotly-graph-div" in html.read_text()  # the HTML keeps its interactive figures; the PDF has them as images


def test_pdf_export_says_how_to_install_chromium_when_there_is_none(tmp_path, monkeypatch):
    from reports.pdf import PdfUnavailable, html_to_pdf, pdf_missing

    monkeypatch.setenv("EXPLAIN_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "no-browsers"))
    assert "apt-get install chromium" in pdf_missing()
    with pytest.raises(PdfUnavailable, match="playwright install chromium"):
        html_to_pdf("<html><body><h1>x</h1></body></html>")


def test_report_cli_compares_named_models_on_images_and_refuses_a_single_model(tmp_path, capsys):
    from reports import cli

    out = tmp_path / "compare.html"
    assert cli.main(["build", "--sections", "compare", "--compare-models", "efficientnet_lite0,efficientnet_lite0",
                     "--images", "chelsea", "--methods", "gradcam", "--device", "cpu", "--out", str(out),
                     "--quiet"]) == 0
    html = out.read_text()
    assert "Model comparison" in html and "differ on 0 image(s)" in html
    single = ["build", "--sections", "compare", "--compare-models", "efficientnet_lite0", "--out", str(out)]
    assert cli.main(single) == 2
    assert "two or more" in capsys.readouterr().err
