"""The known-truth benchmark (decoy-MNIST) and ground truth in batch evaluations: masks
given with a folder reach the localisation metrics, bad ones are noted and skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explain.analyses import run_directly
from explain.commandline import UsageError
from explain.data.decoy import PATCH, decoy_arrays, decoy_subset, patch_level
from explain.evaluation import DataSource, Evaluation, EvaluationInputs, ExecutionOptions, MetricChoice, model_sources
from explain.evaluation.cli import main as explain_main
from explain.methods.registry import MethodSpec
from tests.test_ground_truth import box_mask, png

LOCAL = EvaluationInputs("local", ExecutionOptions(device="cpu", threads=1))
LOCALISATION = (("relevance_mass_accuracy", {}), ("pointing_game", {}), ("localisation_auc", {}))


def test_decoy_patches_code_the_label_in_a_corner_and_the_digit_carries_no_label() -> None:
    arrays = decoy_arrays()
    assert arrays.masks.sum(axis=(1, 2)).tolist() == [PATCH * PATCH] * len(arrays.labels)
    corners = arrays.masks[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners.sum(axis=1) == 1).all() and (corners.sum(axis=0) > 1000).all()  # one corner each, all four used
    levels = np.array([arrays.images[i][arrays.masks[i]] for i in range(len(arrays.labels))])
    assert (levels == patch_level(arrays.labels)[:, None]).all()
    # the digit outside the patch: as likely under any label (the mean digit image does not depend on the label)
    ink = (arrays.images * ~arrays.masks).reshape(len(arrays.labels), -1).mean(axis=1)
    means = [ink[arrays.labels == c].mean() for c in range(10)]
    assert max(means) - min(means) < 0.15 * np.mean(means)


@pytest.mark.slow
def test_the_decoy_model_reads_the_patch_and_maps_that_find_it_localise_it(tmp_path: Path) -> None:
    """The decoy model (trained once, seeded, cached: ~30 s the first time) is right with
    the patch and at chance without it; Grad-CAM puts its relevance on the patch (pointing
    game and ROC AUC near 1), far above a random map's chance level."""
    from explain.models.decoy import DECOY_RECIPE, decoy_checkpoint
    from explain.models.small_cnn import accuracy, trained_base_model

    data = decoy_subset()
    model = trained_base_model(data, DECOY_RECIPE, 0)
    assert accuracy(model, data.test_x, data.test_y) > 0.9
    background = (0.0 - data.mean[0]) / data.std[0]
    arrays = decoy_arrays()
    from explain.data.decoy import held_out_rows
    masks = torch.from_numpy(arrays.masks[held_out_rows(arrays.labels)])[:, None]
    assert accuracy(model, torch.where(masks, torch.tensor(background), data.test_x), data.test_y) < 0.2
    assert decoy_checkpoint().is_file()

    out = tmp_path / "decoy"
    assert explain_main(["evaluate", "--data", "decoy-mnist", "--max-images", "40", "--methods", "gradcam,saliency",
                         "--metrics", "pointing_game,localisation_auc,relevance_mass_accuracy", "--out", str(out),
                         "--quiet", "--threads", "1", "--device", "cpu"]) == 0
    from explain.evaluation import EvaluationResult
    rows = EvaluationResult.open(out).store.rows()
    scores = rows.groupby("method")[["auc_pointing_game", "auc_localisation_auc", "auc_relevance_mass_accuracy"]].mean()
    assert scores.loc["gradcam", "auc_localisation_auc"] > 0.95 and scores.loc["gradcam", "auc_pointing_game"] > 0.5
    chance = PATCH * PATCH / 28**2  # a constant map's relevance mass on the patch
    assert scores.loc["gradcam", "auc_relevance_mass_accuracy"] > 4 * chance
    assert scores.loc["gradcam", "auc_localisation_auc"] > scores.loc["saliency", "auc_localisation_auc"] > 0.5


def test_masks_given_with_a_folder_reach_the_localisation_metrics(tmp_path: Path) -> None:
    """A labelled folder of MNIST-sized images with a masks folder: scores for the images
    with a usable mask, a note for the others, and a map that is its mask scores 1."""
    images, masks = tmp_path / "data", tmp_path / "masks"
    for name in ("0", "1"):
        (images / name).mkdir(parents=True)
        (masks / name).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        label = str(i % 2)
        (images / label / f"{i}.png").write_bytes(png(rng.integers(0, 255, (28, 28), dtype=np.uint8)))
        if i < 3:
            mask = box_mask(28, 28, (4, 4, 12, 12)) if i < 2 else box_mask(20, 20, (0, 0, 4, 4))  # image 2: wrong size
            (masks / label / f"{i}.png").write_bytes(png(mask))
    with pytest.raises(UsageError, match="need ground truth"):
        explain_main_args = ["evaluate", "--data", str(images), "--metrics", "pointing_game", "--weights", "x.pt"]
        from explain.evaluation.cli import evaluation_from_args, add_commands
        import argparse
        parser = argparse.ArgumentParser()
        add_commands(parser.add_subparsers(dest="command"))
        evaluation_from_args(parser.parse_args(explain_main_args))

    from explain.models.small_cnn import save_state_dict, SmallCNN
    torch.manual_seed(0)
    weights = tmp_path / "cnn.pt"
    save_state_dict(SmallCNN(1, 2, 4).eval(), weights)
    analysis = Evaluation.of(model_sources(weights=[str(weights)], arch="small_cnn"),
                             DataSource.of(str(images), truth=str(masks)),
                             (MethodSpec.of("saliency"),), tuple(MetricChoice.of(k, p) for k, p in LOCALISATION),
                             out=tmp_path / "out")
    result = run_directly(analysis, LOCAL)
    rows = result.store.rows().set_index("image")
    assert np.isfinite(rows.loc[["0/0.png", "1/1.png"], "auc_relevance_mass_accuracy"]).all()
    assert rows.loc[["0/2.png", "1/3.png"], "auc_relevance_mass_accuracy"].isna().all()
    assert "no ground-truth mask" in rows.loc["0/2.png", "skipped"]
    notes = "\n".join(result.manifest.get("notes", [])) + "\n".join(result.manifest["data"]["skipped"])
    assert "0/2.png: the mask is 20 x 20 pixels" in notes and "no ground truth for 1 of 4 image(s) (1/3.png)" in notes
    assert Image.open(masks / "0" / "0.png").size == (28, 28)


def test_benchmark_page_offers_decoy_mnist_and_refuses_localisation_without_truth(tmp_path: Path, monkeypatch) -> None:
    """The Benchmark page's decoy entry makes an evaluation of the decoy model on decoy-MNIST
    with its masks; on the plain MNIST subset a localisation metric is refused in one line."""
    from streamlit.testing.v1 import AppTest

    from explain.models import decoy
    from explain.models.small_cnn import SmallCNN, save_state_dict

    weights = tmp_path / "decoy.pt"
    torch.manual_seed(0)
    save_state_dict(SmallCNN(1, 10, 4).eval(), weights)  # a stand-in: the page must not train here
    monkeypatch.setattr(decoy, "decoy_checkpoint", lambda should_stop=None: weights)
    monkeypatch.setenv("EXPLAIN_AUTH", "none")
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.switch_page("pages/benchmark.py")
    at.session_state["benchmark:source"] = "Start a run"
    at.session_state["benchmark:metrics"] = ["pointing_game"]
    at.session_state["benchmark:model_kind"] = "Named models"
    at.run()
    assert not at.exception, at.exception
    assert [e.value.replace("\\", "") for e in at.error] == [
        "Pointing game need ground truth: choose decoy-MNIST, or a server folder with its masks or boxes."
    ]
    at.session_state["benchmark:data"] = "decoy-MNIST: known truth (the patch), with its own model"
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert any(c.value.startswith("Press Run to evaluate into") for c in at.caption)  # the settings were accepted
    assert DataSource.of("decoy-mnist", 10).has_truth
