"""Small reports for the report tests: a tiny CNN whose class names and image names
are hostile HTML, its Grad-CAM gallery, a plotly curve figure and an AUC table."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from PIL import Image

import explain
import reports
from tests.synthetic import PatchCNN, patch_image
from tests.patience import generous

HOSTILE = "<script>alert('x')</script>"
HOSTILE_IMG = '<img src=x onerror="alert(2)">'


def hostile_bundle() -> explain.ModelBundle:
    return explain.make_bundle(
        f"tiny{HOSTILE}", PatchCNN(), [f"cls0 {HOSTILE}", f"cls1 {HOSTILE_IMG}"], input_size=32,
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), cam_layer="features", linear_head="fc", device="cpu",
        weights=f"weights {HOSTILE}",
    )


def patch_photo(seed: int, patch: tuple[int, int, int, int] = (4, 12, 18, 26)) -> Image.Image:
    """`patch_image` as the RGB photo a user would give (32 x 32)."""
    x = patch_image(seed=seed, patch=patch)[0].permute(1, 2, 0).mul(255).round().clamp(0, 255).byte().numpy()
    return Image.fromarray(x)


def gallery_result(bundle: explain.ModelBundle, names=(f"a{HOSTILE}.png", "b.png"), methods=("gradcam", "saliency")):
    """The gallery analysis of patch photos, run directly (nothing stored)."""
    from explain.analyses import AttributionMaps, prepare_images, run_directly
    from explain.methods.registry import MethodSpec

    prepared = prepare_images(bundle, [explain.NamedImage(n, patch_photo(i)) for i, n in enumerate(names)])
    return run_directly(AttributionMaps(prepared.subject(), tuple(MethodSpec.of(m) for m in methods)), prepared)


def gallery(bundle: explain.ModelBundle, names=(f"a{HOSTILE}.png", "b.png"), methods=("gradcam", "saliency")) -> reports.Section:
    return gallery_result(bundle, names, methods).report_section()


def curves(label: str = f"curve {HOSTILE}") -> reports.Section:
    x = np.linspace(0, 1, 11)
    figure = go.Figure([go.Scatter(x=x, y=np.exp(-3 * x), name=label), go.Scatter(x=x, y=1 - x, name="random")])
    figure.update_layout(title="Deletion", xaxis_title="fraction deleted", yaxis_title="probability")
    insertion = go.Figure([go.Scatter(x=x, y=1 - np.exp(-3 * x), name=label)])
    insertion.update_layout(title="Insertion")
    table = reports.Table(("method", "AUC"), ((label, 0.3167), ("random", 0.5)), caption=f"lower is better {HOSTILE}")
    return reports.Section(
        "curves", f"Curves {HOSTILE}",
        (reports.Figure.of(figure, caption="mean over images"), reports.Figure.of(insertion), table),
        description=f"desc {HOSTILE}",
    )


def picture() -> reports.Section:
    """A plotly image (the way SHAP plots show photos) with a heatmap over it."""
    photo = np.asarray(explain.load_sample("coffee").resize((96, 64)))
    figure = go.Figure([go.Image(z=photo), go.Heatmap(z=np.random.default_rng(0).random((8, 12)), x0=4, dx=8, y0=4, dy=8, opacity=0.4)])
    return reports.Section("picture", "Picture", (reports.Figure.of(figure, full_width=True),))


def hostile_report() -> reports.Report:
    bundle = hostile_bundle()
    return reports.Report.assemble(
        f"Title {HOSTILE}", [gallery(bundle), curves(), picture()], author=f"Author {HOSTILE_IMG}",
        description=f"About {HOSTILE}",
    )


EVERY_METHOD = ("gradcam", "saliency", "input_x_gradient", "integrated_gradients", "guided_backprop", "smoothgrad",
                "vargrad", "deeplift")


def every_section_report(roar_store_root) -> reports.Report:
    """A report with one section of each kind, from the real analyses: an eight-method
    gallery, deletion/insertion, SIC/AIC and IROF curves of those eight methods, a SHAP
    summary, and a short real ROAR run (tiny CNN and data, 2 fractions)."""
    from explain.analyses import (
        AttributionMaps, MetricAnalysis, RoarAnalysis, RoarInputs, ShapSummary, prepare_images, run_directly,
    )
    from explain.jobs import JobRunner, JobStore
    from explain.methods.registry import MethodSpec
    from explain.metrics import roar
    from explain.models.small_cnn import TrainRecipe
    from tests.test_roar import patch_dataset

    bundle = explain.make_bundle("PatchCNN", PatchCNN(), ["grey-green", "red patch"], input_size=32, mean=(0.0, 0.0, 0.0),
                                 std=(1.0, 1.0, 1.0), cam_layer="features", linear_head="fc", device="cpu")
    names = ["patch r3c4.png", "patch b.png", "patch c.png"]
    photos = [patch_photo(i, patch=(4 + 4 * i, 12 + 4 * i, 6, 16)) for i in range(3)]
    prepared = prepare_images(bundle, [explain.NamedImage(n, im) for n, im in zip(names, photos)])
    subject = prepared.subject()
    methods = tuple(MethodSpec.of(m) for m in EVERY_METHOD)
    sections = [run_directly(AttributionMaps(subject, methods), prepared).report_section()]
    for metric, params in (("deletion_insertion", {"steps": 8}), ("sic_aic", {}), ("irof", {"n_segments": 16})):
        sections.append(run_directly(MetricAnalysis.of(metric, subject, methods, params), prepared).report_section())
    shap = ShapSummary(subject, MethodSpec.of("shap_gradient"), top_k=2)
    sections.append(run_directly(shap, prepared).report_section(cells=4))
    settings = roar.RoarSettings(methods=tuple(MethodSpec(m) for m in ("saliency", "gradcam", "input_x_gradient")),
                                 fractions=(0.1, 0.5), recipe=TrainRecipe(epochs=3, batch_size=32, width=4))
    dataset = patch_dataset()
    job = JobRunner(JobStore(roar_store_root)).submit(RoarAnalysis.of(dataset, settings), RoarInputs(dataset))
    assert job.wait(generous(30)) and job.state == "done", job.error
    sections.append(job.result.report_section())
    return reports.Report.assemble("Every section", sections)
