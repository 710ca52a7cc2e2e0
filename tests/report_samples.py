"""Small reports for the report tests: a tiny CNN whose class names and image names
are hostile HTML, its Grad-CAM gallery, a plotly curve figure and an AUC table."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from PIL import Image

import explain
import reports
from tests.synthetic import PatchCNN, patch_image

HOSTILE = "<script>alert('x')</script>"
HOSTILE_IMG = '<img src=x onerror="alert(2)">'


def hostile_bundle() -> explain.ModelBundle:
    return explain.make_bundle(
        f"tiny{HOSTILE}", PatchCNN(), [f"cls0 {HOSTILE}", f"cls1 {HOSTILE_IMG}"], input_size=32,
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), cam_layer="features", linear_head="fc", device="cpu",
        weights=f"weights {HOSTILE}",
    )


def patch_photo(seed: int) -> Image.Image:
    """`patch_image` as the RGB photo a user would give (32 x 32)."""
    x = patch_image(seed=seed)[0].permute(1, 2, 0).mul(255).round().clamp(0, 255).byte().numpy()
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
