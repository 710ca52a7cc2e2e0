"""Sanity checks with known answers: model parameter randomisation (Adebayo et al. 2018),
the random-logit check, method agreement and Captum's robustness metrics, on a small CNN
trained here on data whose label sits in one patch, and on closed-form models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from captum.metrics import infidelity, sensitivity_max
from scipy import ndimage
from scipy.stats import spearmanr

import explain
from explain.analyses import MetricAnalysis, prepare_images
from explain.jobs import JobRunner, JobStore
from explain.methods.registry import Method, MethodSpec, register, unregister
from explain.metrics import ComparisonInput, MetricInput, Pairs, get_metric
from explain.metrics.agreement import iou_matrix, spearman_matrix, top_masks
from explain.metrics.random_logit import other_classes
from explain.metrics.randomisation import group_layers, forward_order, plan_steps
from explain.metrics.robustness import gaussian_pixel_noise, spread_over_channels, uniform_ball
from explain.metrics.similarity import SIMILARITIES, rank_correlation
from explain.models.small_cnn import TrainRecipe, small_cnn_bundle, torch_threads, train_small_cnn
from tests.synthetic import LinearClassifier, PatchCNN, bundle_of
from tests.test_roar import patch_dataset
from tests.patience import generous
from reports import build_section

RECIPE = TrainRecipe(epochs=3, batch_size=32, learning_rate=1e-2, width=8)


@pytest.fixture(scope="module")
def trained():
    """The SmallCNN (3 conv-BN-ReLU blocks, GAP, linear) trained to 100 % test accuracy on
    16 x 16 images whose class is a dark or bright top-left patch; 16 test images."""
    dataset = patch_dataset()
    with torch_threads(1):
        model = train_small_cnn(dataset, dataset.train_x, dataset.train_y, RECIPE, 0)
    bundle = small_cnn_bundle(dataset, model, RECIPE)
    x = dataset.test_x[:16]
    targets = bundle.logits(x).argmax(dim=1)
    assert (bundle.logits(dataset.test_x).argmax(1) == dataset.test_y).float().mean() == 1.0
    return bundle, x, targets


def _edges(bundle, x, target, params) -> torch.Tensor:
    """Sobel gradient magnitude of the channel mean: a map of the image alone."""
    grey = x.detach().mean(dim=1).cpu().numpy()
    magnitude = np.hypot(ndimage.sobel(grey, axis=1), ndimage.sobel(grey, axis=2))
    return torch.from_numpy(magnitude.astype(np.float32))


@pytest.fixture
def edge_method():
    register(Method(key="edges", label="Edges (test)", compute=_edges, description="Sobel magnitude of the input",
                    reference="test", signed=False))
    yield MethodSpec.of("edges")
    unregister("edges")


def run_metric(key: str, bundle, x, targets, spec: MethodSpec, **params):
    metric = get_metric(key)
    maps = explain.attribute(bundle, x, spec.key, targets.tolist(), **spec.resolved)
    return metric.compute(MetricInput(bundle, x, maps, targets, spec), metric.resolve_params(params))


def test_layers_run_in_forward_order_with_their_normalisation_and_steps_cut_from_the_output(default_bundle):
    model = default_bundle.model
    names = forward_order(model, torch.zeros(1, 3, 224, 224))
    layers = group_layers(model, names)
    assert len(names) == 99 and len(layers) == 50  # 49 convolutions with their BatchNorm, and the classifier
    assert layers[0].modules == ("_conv_stem", "_bn0") and layers[-1].modules == ("_fc",)
    cascading, independent = plan_steps(layers, "cascading", 8), plan_steps(layers, "independent", 8)
    assert [len(s.layers) for s in cascading] == [1, 8, 15, 22, 29, 36, 43, 50]
    assert cascading[0].layers == (49,) and cascading[0].label == "_fc" and cascading[-1].x == 1.0
    assert all(
        set(a.layers) < set(b.layers) for a, b in zip(cascading, cascading[1:], strict=False)
    )  # nested, one more group each
    covered = [i for step in independent for i in step.layers]
    assert sorted(covered) == list(range(50)) and independent[0].layers == (49,)  # groups partition the layers
    assert [s.layers for s in plan_steps(layers, "independent", 400)] == [(i,) for i in range(49, -1, -1)]


def test_a_map_of_the_image_alone_keeps_similarity_one_under_every_randomisation(trained, edge_method):
    bundle, x, targets = trained
    for key in ("cascading_randomisation", "independent_randomisation", "random_logit"):
        for info, curves in run_metric(key, bundle, x[:4], targets[:4], edge_method).items():
            np.testing.assert_allclose(curves.curves, 1.0, atol=1e-12, err_msg=info)


def test_gradients_fall_as_layers_are_randomised_and_guided_backprop_ignores_the_top_layer(trained):
    """Adebayo et al.'s known result: randomising the logit layer alone changes the
    gradient map, Guided Backprop's hardly; both fall once the whole network is random."""
    bundle, x, targets = trained
    gradient = run_metric("cascading_randomisation", bundle, x, targets, MethodSpec.of("saliency"))[
        "cascading_spearman_abs"
    ]
    guided = run_metric("cascading_randomisation", bundle, x, targets, MethodSpec.of("guided_backprop"))[
        "cascading_spearman_abs"
    ]
    assert gradient.x_labels == ("trained model", "fc", "features.8", "features.4", "features.0")
    g, gbp = gradient.aggregate, guided.aggregate
    assert g[0] == gbp[0] == 1.0
    assert g[1] < 0.6 and gbp[1] > 0.85  # logits layer randomised: 0.42 vs 0.91 here
    assert g[-1] < 0.2 and g[-1] < g[1] and gbp[-1] < 0.3
    assert gradient.score < guided.score  # lower area: the gradient depends more on the weights


def test_the_cached_model_is_bit_identical_after_randomisation_runs(trained):
    bundle, x, targets = trained
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    for key in ("cascading_randomisation", "independent_randomisation"):
        run_metric(key, bundle, x[:2], targets[:2], MethodSpec.of("guided_backprop"))  # patches ReLUs of its model
    after = bundle.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in bundle.model.modules())


def test_randomisation_is_seeded(trained):
    bundle, x, targets = trained
    runs = [run_metric("independent_randomisation", bundle, x[:3], targets[:3], MethodSpec.of("saliency"), seed=s)
            for s in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0]["independent_ssim"].curves, runs[1]["independent_ssim"].curves)
    assert not np.allclose(runs[0]["independent_ssim"].curves, runs[2]["independent_ssim"].curves)


def test_similarities_follow_their_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 64, 64))
    by_key = {s.key: s.compute for s in SIMILARITIES}
    assert by_key["spearman_abs"](a, b) == pytest.approx(spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic)
    assert by_key["spearman"](a, -a) == pytest.approx(-1.0) and by_key["spearman_abs"](a, -a) == pytest.approx(1.0)
    assert all(s.compute(a, 3 * a) == pytest.approx(1.0) for s in SIMILARITIES)  # the scale of a map is irrelevant
    assert all(
        by_key[k](a, 3 * a + 1) == pytest.approx(1.0) for k in ("spearman", "ssim", "hog")
    )  # signed / min-max: the offset too
    flat = np.zeros_like(a)
    assert rank_correlation(a, flat) == 0.0 and rank_correlation(flat, flat) == 1.0


def test_the_random_logit_draws_another_class_uniformly_and_reproducibly():
    digests = [f"{i:040x}" for i in range(4000)]
    others = other_classes([3] * 4000, 10, seed=0, digests=digests)
    assert 3 not in others and others == other_classes([3] * 4000, 10, seed=0, digests=digests)
    counts = np.bincount(others, minlength=10)
    assert counts[3] == 0 and np.delete(counts, 3).min() > 4000 / 9 * 0.8
    assert other_classes([1], 2, seed=5) == [0]  # two classes: the other one
    assert (
        other_classes([3, 3], 10, 0, digests[:2])[1] == other_classes([3], 10, 0, digests[1:2])[0]
    )  # by content, not position


def test_random_logit_tells_a_class_sensitive_map_from_a_class_blind_one(trained):
    bundle, x, targets = trained
    gradcam = run_metric("random_logit", bundle, x, targets, MethodSpec.of("gradcam"))["random_logit_spearman_abs"]
    guided = run_metric("random_logit", bundle, x, targets, MethodSpec.of("guided_backprop"))[
        "random_logit_spearman_abs"
    ]
    assert gradcam.curves.shape == (16, 1) and np.array_equal(gradcam.aucs, gradcam.curves[:, 0])
    assert gradcam.score < guided.score


def test_agreement_of_a_method_with_itself_is_all_ones_and_pairs_match_scipy():
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((3, 2, 20, 20)).astype(np.float32)  # 3 methods, 2 images
    specs = (MethodSpec("a"), MethodSpec("a_again"), MethodSpec("b"))
    data = ComparisonInput(None, torch.zeros(2, 1, 20, 20), {"a": maps[0], "a_again": maps[0], "b": maps[2]},
                           torch.zeros(2, dtype=torch.long), specs)
    pairs = get_metric("agreement").compute(data, get_metric("agreement").resolve_params({}))
    for p in pairs.values():
        np.testing.assert_allclose(p.values[:, :2, :2], 1.0)
        np.testing.assert_allclose(np.diagonal(p.values, axis1=1, axis2=2), 1.0)
    rho = pairs["agreement_spearman"].values[1, 0, 2]
    assert rho == pytest.approx(spearmanr(np.abs(maps[0, 1]).ravel(), np.abs(maps[2, 1]).ravel()).statistic)
    summary = pairs["agreement_spearman"].per_method()["b"]
    assert summary.aucs[0] == pytest.approx(pairs["agreement_spearman"].values[0, 2, :2].mean())


def test_top_k_overlap_by_hand():
    maps = np.array([[5, 4, 3, 2, 1, 0], [0, 4, 3, 2, 1, 5], [0, 0, 0, 0, 0, 0]], dtype=float)
    masks = top_masks(maps, 2 / 6, tie_break=np.arange(6.0))
    assert masks[0].tolist() == [True, True, False, False, False, False]
    assert masks[1].tolist() == [False, True, False, False, False, True]
    assert masks[2].tolist() == [True, True, False, False, False, False]  # all tied: the seeded order decides
    iou = iou_matrix(masks)
    assert iou[0, 1] == pytest.approx(1 / 3) and iou[0, 2] == 1.0
    assert spearman_matrix(np.abs(maps))[2].tolist() == [0.0, 0.0, 1.0]  # a constant map ranks nothing


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_infidelity_and_sensitivity_equal_captums_direct_calls(trained):
    bundle, x, targets = trained
    x, targets = x[:4], targets[:4]
    spec = MethodSpec.of("saliency")
    metric = get_metric("robustness")
    params = metric.resolve_params({"infidelity_samples": 12, "sensitivity_samples": 4, "seed": 3})
    maps = explain.attribute(bundle, x, "saliency", targets.tolist())
    ours = metric.compute(MetricInput(bundle, x, maps, targets, spec), params)
    direct_infidelity = infidelity(
        bundle.model,
        gaussian_pixel_noise(0.1, 3),
        x,
        spread_over_channels(maps, x),
        target=targets,
        n_perturb_samples=12,
        max_examples_per_batch=4 * 12,
        normalize=True,
    )
    np.testing.assert_allclose(ours["infidelity"].aucs, direct_infidelity.numpy(), rtol=1e-6)

    def saliency(inputs, target):  # Captum hands a tuple first, then tensors; answers in kind
        attributions = Saliency(bundle.model).attribute(inputs, target=target, abs=True)
        return tuple(a.sum(dim=1) for a in attributions) if isinstance(inputs, tuple) else attributions.sum(dim=1)

    direct_sensitivity = sensitivity_max(saliency, x, perturb_func=uniform_ball(0.02, 3), n_perturb_samples=4,
                                         max_examples_per_batch=16, target=targets)
    np.testing.assert_allclose(ours["sensitivity_max"].aucs, direct_sensitivity.numpy(), rtol=1e-5)
    assert np.all(ours["sensitivity_max"].aucs > 0)


def test_the_exact_gradient_of_a_linear_model_has_zero_infidelity():
    """f(x) - f(x - I) = w . I for a linear logit, and the channel-summed gradient map
    dotted with a per-pixel perturbation is exactly that."""
    model = LinearClassifier((3, 8, 8), classes=3)
    with torch.no_grad():
        model.fc.weight.abs_()  # |gradient| = gradient: Saliency is the exact gradient
    bundle = bundle_of(model, 8, 3)
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 0, 1])
    result = run_metric(
        "robustness", bundle, x, targets, MethodSpec.of("saliency"), normalize=False, infidelity_noise=0.3
    )
    np.testing.assert_allclose(result["infidelity"].aucs, 0.0, atol=1e-8)
    np.testing.assert_allclose(result["sensitivity_max"].aucs, 0.0, atol=1e-6)  # a linear model's gradient never moves


def test_sanity_checks_run_as_analyses_store_their_parts_and_build_report_sections(tmp_path):
    bundle = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    prepared = prepare_images(
        bundle, [explain.NamedImage(n, explain.load_sample(n)) for n in ("chelsea", "coffee", "astronaut")]
    )
    methods = (MethodSpec.of("saliency"), MethodSpec.of("gradcam"))
    runner = JobRunner(JobStore(tmp_path))
    for key, params in (
        ("cascading_randomisation", {"max_steps": 2}),
        ("agreement", {}),
        ("robustness", {"sensitivity_samples": 2}),
    ):
        analysis = MetricAnalysis.of(key, prepared.subject(), methods, params)
        job = runner.submit(analysis, prepared)
        assert job.wait(generous(12)) and job.state == "done", job.error
        assert job.progress.done == pytest.approx(job.progress.total)
        again = JobRunner(JobStore(tmp_path)).find(analysis)  # rebuilt from the stored parts
        for score, sets in job.result.curves.items():
            for ident, curves in sets.items():
                np.testing.assert_array_equal(again.result.curves[score][ident].curves, curves.curves)
                assert again.result.curves[score][ident].x_labels == curves.x_labels
        section = build_section(again.result)
        assert section.key == key and [b.kind for b in section.blocks][-1] == "table"
        assert len([b for b in section.blocks if b.kind == "figure"]) == len(get_metric(key).scores)
    agreement = runner.find(MetricAnalysis.of("agreement", prepared.subject(), methods, {})).result
    assert isinstance(agreement.pairs["agreement_topk"], Pairs) and agreement.pairs["agreement_topk"].values.shape == (
        3,
        2,
        2,
    )
    assert '"restyle"' in build_section(agreement).blocks[0].figure_json  # a menu switches to each image's matrix


def test_the_sanity_checks_page_runs_every_check_and_shows_the_maps_as_layers_are_randomised():
    from streamlit.testing.v1 import AppTest

    from tests.apptest import click, run_until_idle, shown_result, wait_for_jobs
    from tests.test_metrics_pages import APP

    at = AppTest.from_file(APP, default_timeout=generous(12))
    at.session_state["custom_bundle"] = bundle_of(PatchCNN(), 32, 2, cam_layer="features", linear_head="fc")
    at.session_state["samples"] = ["chelsea", "coffee"]
    at.session_state["methods"] = ["gradcam", "saliency"]
    at.run()
    at.switch_page("pages/sanity_checks.py").run()
    assert not at.exception, at.exception
    for family in ("independent_randomisation", "efficient_mprt", "smooth_mprt"):  # 4 of 7: within one's slots
        at.checkbox(key=f"sanity_checks:run:{family}").uncheck()
    at.number_input(key="param:robustness:sensitivity_samples").set_value(2)
    wait_for_jobs()  # the gallery's first-visit job holds none of the session's 4 slots now
    run_until_idle(click(at, "Run"))
    assert not at.exception, at.exception
    cascading = shown_result(at, "sanity_checks:cascading_randomisation")
    assert list(cascading.curves["cascading_ssim"]) == ["gradcam", "saliency"]
    assert cascading.curves["cascading_ssim"]["saliency"].x_labels == ("trained model", "fc", "conv2", "conv1")
    assert shown_result(at, "sanity_checks:agreement").pairs["agreement_spearman"].values.shape == (2, 2, 2)
    assert shown_result(at, "sanity_checks:robustness").params["sensitivity_samples"] == 2
    assert "_analysis:sanity_checks:independent_randomisation" not in at.session_state  # unchecked: not run
    charts = 4 + 4 + 2 + 2  # cascading, random logit, agreement heatmaps, robustness strips
    assert len(at.get("plotly_chart")) == charts and len(at.dataframe) == 4
    at.selectbox(key="sanity_checks:cascading_randomisation:detail_method").set_value("saliency")
    at.button(key="sanity_checks:cascading_randomisation:detail_show").click().run()
    assert not at.exception, at.exception
    strip = at.get("image")[-1]
    assert [i.caption for i in strip.proto.imgs] == ["trained model", "up to fc", "up to conv2", "up to conv1"]


def test_randomised_copies_of_the_default_model_randomise_its_rectifier_form_too(default_bundle):
    """Guided Backprop, DeepLIFT and LRP run on the bundle's rectifier form: on a randomised
    copy it must hold the copy's (randomised) weights, and the cached model none of them."""
    from explain.metrics.randomisation import randomised_bundles

    assert default_bundle.rectifier_model is not None
    before = {k: v.clone() for k, v in default_bundle.model.state_dict().items()}
    x = torch.zeros(1, 3, 224, 224)
    for step, randomised in randomised_bundles(default_bundle, x, "cascading", 2, seed=0):
        fast, split = dict(randomised.model.named_parameters()), dict(randomised.rectifier_model.named_parameters())
        assert all(fast[name] is split[name] for name in fast)
        top = randomised.model.get_submodule(step.label)
        assert not torch.equal(top.weight, default_bundle.model.get_submodule(step.label).weight)
        logits = randomised.model(x), randomised.rectifier_model(x)
        torch.testing.assert_close(*logits)
    assert all(torch.equal(before[k], v) for k, v in default_bundle.model.state_dict().items())

