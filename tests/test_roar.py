"""ROAR on tiny synthetic data whose label is written in a known patch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from explain.analyses import RoarAnalysis, RoarInputs
from explain.jobs import JobRunner, JobStore
from explain.methods.registry import MethodSpec
from explain.metrics import roar
from explain.data.training import LabelledImages, from_arrays
from explain.models.small_cnn import TrainRecipe
from tests.patience import generous

SIZE, PATCH = 16, 4  # the label lives in the top-left 4 x 4 patch: 16 / 256 = 6.25 % of the pixels
TINY = TrainRecipe(epochs=3, batch_size=32, learning_rate=1e-2, width=4)


def patch_dataset(n: int = 320, seed: int = 0) -> LabelledImages:
    """Two classes; background noise carries nothing, the patch is +1 (class 1) or -1 (class 0)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = 0.5 + 0.1 * rng.standard_normal((n, 1, SIZE, SIZE))
    images[:, :, :PATCH, :PATCH] = np.where(labels == 1, 0.95, 0.05)[:, None, None, None]
    return from_arrays("patch", images.clip(0, 1), labels, ["dark", "bright"], test_fraction=0.25, seed=0)


def oracle_ranker(bundle, images: torch.Tensor) -> np.ndarray:
    """Ranks the patch first: the ideal attribution for this dataset."""
    maps = np.zeros((images.shape[0], SIZE, SIZE), dtype=np.float32)
    maps[:, :PATCH, :PATCH] = 1.0
    return maps


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def dataset() -> LabelledImages:
    return patch_dataset()


def settings(methods=("oracle",), fractions=(0.1, 0.5), **kw) -> roar.RoarSettings:
    return roar.RoarSettings(methods=tuple(MethodSpec(m) for m in methods), fractions=fractions, recipe=TINY, **kw)


def run(dataset, s, store_dir, rankers=None, runner: JobRunner | None = None):
    """Run ROAR as a job on a runner storing under `store_dir`; the finished job."""
    runner = runner or JobRunner(JobStore(store_dir))
    job = runner.submit(RoarAnalysis.of(dataset, s), RoarInputs(dataset, rankers=rankers or {"oracle": oracle_ranker}))
    assert job.wait(generous(12)), "the tiny ROAR job did not finish"
    return job


def accuracies(result) -> dict[str, tuple[float, ...]]:
    """Accuracy at each fraction (mean over repeats) by ranking, without the base point."""
    start = 1 if result.settings.mode == "roar" else 0
    return {k: tuple(np.round(c.aggregate[start:], 6)) for k, c in result.metric_curves.items()}


def test_oracle_removal_drops_to_chance_while_random_stays_high(dataset, tmp_path):
    result = run(dataset, settings(fractions=(0.1,)), tmp_path).result
    acc = accuracies(result)
    assert result.base_accuracy > 0.95
    assert acc["oracle"][0] < 0.65  # chance is 0.5; 80 test images
    assert acc["random"][0] > 0.9
    auc = {k: c.score for k, c in result.metric_curves.items()}
    assert auc["oracle"] < auc["random"]
    expected = np.trapezoid([result.base_accuracy, acc["oracle"][0]], [0.0, 0.1])
    assert auc["oracle"] == pytest.approx(expected)  # the area starts at the unmodified model's accuracy


def test_kar_keeping_the_patch_keeps_accuracy(dataset, tmp_path):
    result = run(dataset, settings(fractions=(0.1,), mode="kar"), tmp_path).result
    assert accuracies(result)["oracle"][0] > 0.9  # the whole patch is among the 10 % kept
    assert result.settings.metric.higher_is_better


def test_degrade_replaces_exactly_the_top_fraction_by_the_fill():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    maps = np.arange(2 * 16, dtype=np.float32).reshape(2, 4, 4)  # the last pixels are the most important
    order = roar.pixel_order(maps, seed=0)
    assert order[0, 0] == 15 and order[1, -1] == 0
    fill = torch.tensor([-1.0, -2.0, -3.0])
    out = roar.degrade(images, order, 0.25, fill)
    removed = (out != images).all(dim=1)  # the same pixels in every channel
    assert removed.sum(dim=(1, 2)).tolist() == [4, 4]
    assert removed[:, 3, :].all()  # the bottom row holds the top 4 scores
    assert torch.equal(out[:, :, 3, :], fill.view(1, 3, 1).expand(2, 3, 4))
    kept = roar.degrade(images, order, 0.25, fill, keep=True)
    assert torch.equal(kept[:, :, 3, :], images[:, :, 3, :]) and (kept[:, :, :3, :] == fill.view(1, 3, 1, 1)).all()


def test_same_seed_gives_same_accuracies(dataset, tmp_path):
    s = settings(methods=("saliency",), fractions=(0.3,))
    first, second = run(dataset, s, tmp_path / "a").result, run(dataset, s, tmp_path / "b").result
    assert accuracies(first) == accuracies(second)
    assert first.base_accuracy == second.base_accuracy


def test_stopped_run_resumes_with_only_the_missing_retrainings(dataset, tmp_path, monkeypatch):
    from explain.analyses import roar as roar_analysis

    s = settings(methods=("saliency",), fractions=(0.2, 0.6))  # 2 rankings x 2 fractions = 4 retrainings
    trained = []
    original = roar_analysis.train_small_cnn

    def counting(*args, **kwargs):
        trained.append(1)
        model = original(*args, **kwargs)
        if len(trained) == 2:
            job.cancel()  # stop after the second retraining
        return model

    monkeypatch.setattr(roar_analysis, "train_small_cnn", counting)
    runner = JobRunner(JobStore(tmp_path))
    job = runner.submit(RoarAnalysis.of(dataset, s), RoarInputs(dataset))
    assert job.wait(generous(12)) and job.state == "cancelled" and len(trained) == 2
    partial = RoarAnalysis.of(dataset, s).stored(runner.reader())
    assert partial.done == 2 and not partial.complete
    table = partial.table()  # what the page shows: saliency done, the baseline not yet
    assert list(table.index) == ["Saliency", "Random (baseline)"]
    assert table.loc["Saliency", ["20%", "60%"]].notna().all() and table.loc["Random (baseline)", ["20%", "60%"]].isna().all()
    assert np.isfinite(table.loc["Saliency", "ROAR AUC"]) and np.isnan(table.loc["Random (baseline)", "ROAR AUC"])
    trained.clear()
    resumed = JobRunner(JobStore(tmp_path)).submit(RoarAnalysis.of(dataset, s), RoarInputs(dataset))
    assert resumed.wait(generous(12)) and resumed.state == "done" and len(trained) == 2
    fresh = run(dataset, s, tmp_path / "fresh").result
    assert accuracies(resumed.result) == accuracies(fresh)
    trained.clear()
    again = JobRunner(JobStore(tmp_path)).submit(RoarAnalysis.of(dataset, s), RoarInputs(dataset))
    assert again.wait(generous(6)) and again.state == "done" and trained == []


def test_runs_of_the_same_experiment_share_their_retrainings(dataset, tmp_path, monkeypatch):
    """A run with another method reuses the random baseline an earlier run trained."""
    from explain.analyses import roar as roar_analysis

    run(dataset, settings(methods=("saliency",), fractions=(0.5,)), tmp_path)
    trained = []
    original = roar_analysis.train_small_cnn
    monkeypatch.setattr(roar_analysis, "train_small_cnn", lambda *a, **k: trained.append(1) or original(*a, **k))
    result = run(dataset, settings(methods=("oracle",), fractions=(0.5,)), tmp_path).result
    assert len(trained) == 1 and result.complete  # only the oracle at 50 %


def test_job_is_not_started_twice(dataset, tmp_path):
    release = threading.Event()

    def gated(bundle, images):  # holds the job in its attribution phase until released
        assert release.wait(generous(6))
        return oracle_ranker(bundle, images)

    s = settings(methods=("gated",), fractions=(0.5,))
    runner = JobRunner(JobStore(tmp_path))
    analysis = RoarAnalysis.of(dataset, s)
    job = runner.submit(analysis, RoarInputs(dataset, rankers={"gated": gated}))
    assert job.active
    assert runner.submit(analysis, RoarInputs(dataset, rankers={"gated": gated})) is job
    release.set()
    assert job.wait(generous(6))
    assert job.state == "done" and job.result.complete
    assert runner.find(analysis) is job


def test_failed_job_reports_its_error(dataset, tmp_path):
    def broken(bundle, images):
        return np.zeros((1, 2, 2), dtype=np.float32)

    job = run(dataset, settings(methods=("broken",), fractions=(0.5,)), tmp_path, rankers={"broken": broken})
    assert job.state == "failed" and "shape" in job.error


def test_settings_and_percentages_are_validated():
    assert roar.parse_percentages("10, 30%, 50") == (0.1, 0.3, 0.5)
    for bad in ("", "abc", "0", "100", "150"):
        with pytest.raises(ValueError):
            roar.parse_percentages(bad)
    with pytest.raises(ValueError):
        settings(fractions=(1.0,))
    with pytest.raises(ValueError):
        settings(mode="keep")


def test_labelled_folder_becomes_normalised_tensors_with_a_stratified_split(tmp_path):
    from PIL import Image

    from explain.data.datasets import DatasetError, dataset_from_folder
    from explain.data.training import from_image_dataset

    for name, value in (("a", 30), ("b", 220)):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.new("RGB", (20, 12), (value, value, value)).save(tmp_path / name / f"{i}.png")
    data = from_image_dataset(dataset_from_folder(tmp_path, [tmp_path]), image_size=8)
    assert data.class_names == ["a", "b"] and data.channels == 3 and data.image_size == 8
    assert torch.bincount(data.test_y).tolist() == [1, 1] and torch.bincount(data.train_y).tolist() == [4, 4]
    assert abs(float(data.train_x.mean())) < 1e-5 and abs(float(data.train_x.std()) - 1) < 0.05
    assert data.mean[0] == pytest.approx((30 + 220) / 2 / 255, abs=1e-4)
    with pytest.raises(DatasetError, match="needs a class"):
        from_image_dataset(dataset_from_folder(tmp_path / "a", [tmp_path]))


def test_method_names_ignore_default_parameters():
    assert MethodSpec.of("integrated_gradients", {"n_steps": 32}).ident == "integrated_gradients"
    assert MethodSpec.of("integrated_gradients", {"n_steps": 8}).ident == 'integrated_gradients{"n_steps":8}'
    with pytest.raises(ValueError):
        MethodSpec.of("integrated_gradients", {"n_steps": 0})
