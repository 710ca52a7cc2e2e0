"""Small reports for the report tests: a tiny CNN whose class names and image names
are hostile HTML, its Grad-CAM gallery, a plotly curve figure and an AUC table."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

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


def gallery(bundle: explain.ModelBundle, names=(f"a{HOSTILE}.png", "b.png"), methods=("gradcam", "saliency")) -> reports.Section:
    batch = torch.cat([patch_image(seed=i) for i in range(len(names))])
    maps = {m: explain.attribute(bundle, batch, m) for m in methods}
    return reports.gallery_section(
        bundle, list(names), bundle.to_display(batch), maps, {m: {} for m in methods}, None, bundle.top_k(batch, 2),
    )


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
    """A report with one section of each kind, from the real section builders: an
    eight-method gallery, deletion/insertion and SIC/AIC curves of those eight methods,
    a SHAP summary, and a short real ROAR run (tiny CNN and data, 2 fractions)."""
    from explain.analyses.shap_grid import maps_for_classes, summarize_grid, top_classes
    from explain.metrics import deletion_insertion, pic_metrics, random_seed_masks, roar
    from explain.models.small_cnn import TrainRecipe
    from reports.sections import deletion_insertion_section, roar_section, shap_summary_section, sic_aic_section
    from tests.test_roar import patch_dataset

    bundle = explain.make_bundle("PatchCNN", PatchCNN(), ["grey-green", "red patch"], input_size=32, mean=(0.0, 0.0, 0.0),
                                 std=(1.0, 1.0, 1.0), cam_layer="features", linear_head="fc", device="cpu")
    names = ["patch r3c4.png", "patch b.png", "patch c.png"]
    batch = torch.cat([patch_image(seed=i, patch=(4 + 4 * i, 12 + 4 * i, 6, 16)) for i in range(3)])
    display, top = bundle.to_display(batch), bundle.top_k(batch, 2)
    methods = {m: {} for m in EVERY_METHOD}
    maps = {m: explain.attribute(bundle, batch, m) for m in methods}
    sections = [reports.gallery_section(bundle, names, display, maps, methods, None, top)]
    sections.append(deletion_insertion_section(bundle, names, deletion_insertion(bundle, batch, maps, None, steps=8), methods))
    pic = pic_metrics(bundle, batch, maps, random_seed_masks(3, 32, 32, seed=0), min_pred_value=0.0)
    sections.append(sic_aic_section(bundle, names, pic, methods))
    cache = explain.AttributionCache()
    digests = [f"img{i}" for i in range(3)]
    per_class = maps_for_classes(cache, bundle, batch, digests, "shap_gradient", top_classes(top, 2))
    explained = [row[0][0] for row in top]
    shap_maps = explain.cached_attribute(cache, bundle, batch, digests, "shap_gradient", explained)
    summary = summarize_grid(shap_maps, display, (4, 4), image_names=names, targets=explained,
                             target_names=[bundle.class_names[c] for c in explained], method="SHAP (gradient)")
    sections.append(shap_summary_section(bundle, names, display, top, per_class, summary, "shap_gradient", {}))
    settings = roar.RoarSettings(methods=tuple(roar.MethodSpec(m) for m in ("saliency", "gradcam", "input_x_gradient")),
                                 fractions=(0.1, 0.5), recipe=TrainRecipe(epochs=3, batch_size=32, width=4))
    result = roar.run_roar(patch_dataset(), settings, store=roar.RoarStore(roar_store_root))
    sections.append(roar_section(result, settings))
    return reports.Report.assemble("Every section", sections)
