"""Deletion/insertion and SIC/AIC: closed forms, an oracle map, agreement with PAIR saliency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from saliency.metrics import pic as reference
from skimage import data, filters
from torch import nn

from explain.metrics import (
    AIC, DELETION, INSERTION, SIC, SUBSTRATES, deletion_insertion, pic_metrics, pic_strip, random_seed_masks,
)
from explain.metrics.deletion import blur
from explain.metrics.pic import _model_input, blurred_image, reveal_mask, webp_size
from tests.synthetic import PatchCNN, bundle_of, patch_image


class TwoLogitLinear(nn.Module):
    """logits = [w . x, 0], so p(class 0) = sigmoid(w . x)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = (self.w * x).flatten(1).sum(1)
        return torch.stack([f, torch.zeros_like(f)], dim=1)


class Scaled(nn.Module):
    """A model with its logits multiplied, to make probabilities respond more sharply."""

    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.factor


def test_linear_model_deletion_and_insertion_equal_closed_form_cumulative_sums():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 8, 8, generator=g) * 0.2
    x = torch.randn(2, 3, 8, 8, generator=g)
    bundle = bundle_of(TwoLogitLinear(w), 8, 2, batch_size=5)  # chunks cut across images, steps and kinds
    contributions = (w * x).sum(1).numpy().astype(np.float64)  # (N, H, W): w . x per pixel
    steps = 8
    result = deletion_insertion(bundle, x, {"wx": contributions.astype(np.float32)}, 0, substrate="zero", steps=steps)

    blurred = blur(x)
    inserted_gain = (w * (x - blurred)).sum(1).numpy().astype(np.float64)
    for i in range(2):
        order = np.argsort(-contributions[i].ravel(), kind="stable")
        removed = np.concatenate([[0.0], np.cumsum(contributions[i].ravel()[order])])[np.arange(steps + 1) * 8]
        expected_deletion = 1 / (1 + np.exp(-(contributions[i].sum() - removed)))
        np.testing.assert_allclose(result.deletion["wx"].curves[i], expected_deletion, atol=1e-5)
        start = float((w * blurred[i]).sum())
        added = np.concatenate([[0.0], np.cumsum(inserted_gain[i].ravel()[order])])[np.arange(steps + 1) * 8]
        np.testing.assert_allclose(result.insertion["wx"].curves[i], 1 / (1 + np.exp(-(start + added))), atol=1e-5)
    np.testing.assert_allclose(result.deletion["wx"].x, np.arange(steps + 1) / steps)
    curve = result.deletion["wx"].curves
    np.testing.assert_allclose(result.deletion["wx"].aucs, (curve[:, 1:] + curve[:, :-1]).sum(1) / (2 * steps))


# grey (0.5 before normalisation) makes PatchCNN drop its class at the first step whatever
# the order (every deletion area ~0.008), so it cannot rank the maps; its end points are tested in test_substrates.
@pytest.mark.parametrize("substrate", [s for s in SUBSTRATES if s != "grey"])
def test_oracle_map_beats_constant_which_beats_random(substrate):
    bundle = bundle_of(Scaled(PatchCNN(), 10.0), 32, 2, batch_size=64)
    x = torch.cat([patch_image(32, seed=s) for s in range(3)])
    oracle = np.zeros((3, 32, 32), np.float32)
    oracle[:, 4:12, 18:26] = 1.0  # the red patch: all of class 1's evidence
    maps = {
        "oracle": oracle,
        "random": np.random.default_rng(0).random((3, 32, 32)).astype(np.float32),
        "constant": np.zeros((3, 32, 32), np.float32),  # ties: raster order, reaches the patch at 3/8 of the pixels
    }
    result = deletion_insertion(bundle, x, maps, 1, substrate=substrate, steps=16)
    dele = {k: v.score for k, v in result.deletion.items()}
    ins = {k: v.score for k, v in result.insertion.items()}
    assert dele["oracle"] < dele["constant"] < dele["random"]
    assert ins["oracle"] > ins["constant"] > ins["random"]
    assert DELETION.best(dele) == "oracle" and INSERTION.best(ins) == "oracle"
    # Both curves end where they must: the original image, and the fully substituted one.
    original = bundle.probabilities(x)[:, 1].numpy()
    np.testing.assert_allclose(result.deletion["oracle"].curves[:, 0], original, atol=1e-6)
    np.testing.assert_allclose(result.insertion["random"].curves[:, -1], original, atol=1e-6)


def test_bad_inputs_are_refused_with_clear_messages():
    bundle = bundle_of(PatchCNN(), 32, 2)
    x = patch_image(32)
    with pytest.raises(ValueError, match="substrate"):
        deletion_insertion(bundle, x, {"m": np.zeros((1, 32, 32))}, 1, substrate="plasma")
    with pytest.raises(ValueError, match="shape"):
        deletion_insertion(bundle, x, {"m": np.zeros((1, 16, 16))}, 1)
    with pytest.raises(ValueError, match="out of range"):
        deletion_insertion(bundle, x, {"m": np.zeros((1, 32, 32))}, 5)
    with pytest.raises(ValueError, match="seed_masks"):
        pic_metrics(bundle, x, {"m": np.zeros((1, 32, 32))}, np.zeros((1, 8, 8), bool), 1)


def test_metric_metadata_gives_directions():
    assert (
        not DELETION.higher_is_better and INSERTION.higher_is_better and SIC.higher_is_better and AIC.higher_is_better
    )
    assert DELETION.best({"a": 0.2, "b": 0.1, "c": float("nan")}) == "b"
    assert SIC.best({"a": 0.2, "b": 0.1}) == "a"


def _photo(name: str, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(getattr(data, name)()).resize((size, size), Image.BILINEAR))


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.3])
def test_blurred_image_is_pixel_identical_to_reference(threshold):
    image = _photo("chelsea", 64)
    seed = random_seed_masks(1, 64, 64, seed=1)[0]
    saliency = filters.gaussian(np.random.default_rng(2).random((64, 64)), 3)
    mask = reveal_mask(saliency, seed, threshold) if threshold else seed
    np.testing.assert_array_equal(blurred_image(image, mask), reference.create_blurred_image(image, mask))
    assert webp_size(image) == reference.estimate_image_entropy(image)


@pytest.fixture
def trapz_alias(monkeypatch):
    """The reference calls np.trapz, which NumPy 2.4 removed."""
    if not hasattr(np, "trapz"):
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)


@pytest.mark.slow
def test_sic_and_aic_agree_with_pair_saliency(trapz_alias):
    size, n = 32, 3
    bundle = bundle_of(Scaled(PatchCNN(), 10.0), size, 2, batch_size=16)
    images_uint8 = np.stack([
        (patch_image(size, seed=s)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for s in range(n)
    ])
    x = _model_input(bundle, images_uint8)
    rng = np.random.default_rng(0)
    oracle = np.zeros((n, size, size), np.float32)
    oracle[:, 4:12, 18:26] = 1.0
    maps = {
        "oracle_noisy": oracle + rng.random((n, size, size)).astype(np.float32) * 0.5,
        "random": rng.random((n, size, size)).astype(np.float32),
    }
    seeds = random_seed_masks(n, size, size, seed=4)
    thresholds = (0.02, 0.1, 0.34, 0.6)
    ours = pic_metrics(bundle, x, maps, seeds, 1, thresholds=thresholds, num_data_points=200)

    def probabilities(batch: np.ndarray) -> np.ndarray:
        return bundle.probabilities(_model_input(bundle, batch)).numpy()

    original_classes = probabilities(images_uint8).argmax(1)
    for key in maps:
        for metric, ours_metric in (("sic", ours.sic[key]), ("aic", ours.aic[key])):
            results, kept = [], []
            for i in range(n):
                if metric == "sic":
                    pred = lambda b: probabilities(b)[:, 1]  # noqa: E731
                else:
                    pred = lambda b, c=original_classes[i]: (probabilities(b).argmax(1) == c).astype(float)  # noqa: E731
                try:
                    results.append(reference.compute_pic_metric(
                        images_uint8[i], maps[key][i], seeds[i], pred, thresholds,
                        min_pred_value=0.0, keep_monotonous=True, num_data_points=200,
                    ))
                    kept.append(i)
                except reference.ComputePicMetricError:
                    pass
            assert tuple(kept) == ours_metric.kept
            assert len(kept) + len(ours_metric.skipped) == n
            for r, curve, auc in zip(results, ours_metric.curves, ours_metric.aucs, strict=True):
                np.testing.assert_allclose(curve, r.curve_y, atol=1e-3)
                np.testing.assert_allclose(ours_metric.x, r.curve_x)
                assert abs(auc - r.auc) < 1e-3
            if results:
                agg = reference.aggregate_individual_pic_results(results, "median" if metric == "sic" else "mean")
                np.testing.assert_allclose(ours_metric.aggregate, agg.curve_y, atol=1e-3)
                assert abs(ours_metric.score - agg.auc) < 1e-3
    assert ours.sic["oracle_noisy"].kept, "the setup must keep at least one image for SIC"
    assert ours.sic["oracle_noisy"].score > ours.sic["random"].score


def test_pic_strip_runs_from_blurred_to_original():
    bundle = bundle_of(Scaled(PatchCNN(), 10.0), 32, 2)
    x = patch_image(32)
    saliency = np.zeros((32, 32), np.float32)
    saliency[4:12, 18:26] = 1.0
    seed = random_seed_masks(1, 32, 32)[0]
    strip = pic_strip(bundle, x[0], saliency, seed, 1, thresholds=(0.0625, 0.5))
    assert strip.images.shape == (4, 32, 32, 3) and strip.thresholds == (0.0, 0.0625, 0.5, 1.0)
    np.testing.assert_array_equal(strip.images[-1], bundle.to_display(x)[0])
    assert strip.information[0] == 0.0 and strip.information[-1] == 1.0
    # The scores are the model's on exactly these pictures; at 0.5 the map's ties keep every pixel.
    np.testing.assert_allclose(strip.scores, bundle.probabilities(_model_input(bundle, strip.images))[:, 1].numpy())
    np.testing.assert_array_equal(strip.images[2], strip.images[-1])
    assert 0.0 < strip.information[1] < 1.0
