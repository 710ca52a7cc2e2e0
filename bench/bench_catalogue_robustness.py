"""Benchmark of the robustness catalogue (average sensitivity, local Lipschitz estimate,
relative input, output and representation stability) against Quantus 0.6.0.

For each family: CPU ms per image of `get_metric(key).compute` (the registry's path)
against Quantus's metric on the same model, images, maps and noise (numpy seeded alike;
Quantus explains the perturbed inputs through the same `attribute` call, batch_size = all
the images: the largest batch Quantus allows), as the ratio ours / Quantus (target: at
most 0.5x); the relative family computes its three scores from one set of perturbed maps,
so it is set against Quantus's three metrics together (the representation: the CAM
layer). "bare" is the cost of the model
passes the metric needs alone (the method's maps of every perturbed input in one
`attribute` call, plus the forward passes of the relative family), and the last column
ours / bare: what the metric adds to its passes.

Two models: a seeded small CNN on 32 px images (the model is cheap: the bookkeeping
shows; bundle batch 256, as the decoy benchmark's small CNN) and, unless `--no-model`,
the default model (EfficientNet-Lite0, 224 px), both explained with Saliency. Figures
are medians of `--repeats` runs, CPU time of this process (`time.process_time`),
measured in one run.

    python bench/bench_catalogue_robustness.py [--images 16] [--samples 10] [--repeats 3] [--no-model]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explain  # noqa: E402
from explain.methods.registry import MethodSpec  # noqa: E402
from explain.metrics import MetricInput, get_metric  # noqa: E402
from explain.metrics.stability import forward_outputs, representation_layer  # noqa: E402
from timing import median_cpu_seconds as cpu_seconds  # noqa: E402  (bench/ is on the path when run as a script)

SEED = 0
METHOD = "saliency"


def small_cnn() -> explain.ModelBundle:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(256, 10)).eval()
    return explain.make_bundle("small CNN", model, [str(i) for i in range(10)], input_size=32,
                               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), device="cpu", batch_size=256,
                               cam_layer="3")


def quantus_cases(samples: int, layer: str) -> dict[str, list[Any]]:
    """Our family key -> the Quantus metrics it stands for (the same definitions and defaults)."""
    import quantus

    quiet = {"disable_warnings": True, "nr_samples": samples}
    return {
        "avg_sensitivity": [quantus.AvgSensitivity(**quiet)],
        "local_lipschitz": [quantus.LocalLipschitzEstimate(normalise_func_kwargs={"normalise_axes": (1, 2, 3)},
                                                           **quiet)],
        "relative_stability": [quantus.RelativeInputStability(**quiet), quantus.RelativeOutputStability(**quiet),
                               quantus.RelativeRepresentationStability(layer_names=[layer], **quiet)],
    }


def bare_passes(bundle: explain.ModelBundle, data: MetricInput, samples: int, forward: bool) -> Callable[[], None]:
    """The passes alone: every perturbed input's map in one call (and its forward pass)."""
    x = data.images.repeat(samples, 1, 1, 1)
    targets = data.targets.repeat(samples).tolist()

    def run() -> None:
        explain.attribute(bundle, x, METHOD, targets)
        if forward:
            forward_outputs(data, x.reshape(len(x), -1).numpy(), representation_layer(bundle))

    return run


def bench(bundle: explain.ModelBundle, n: int, samples: int, repeats: int) -> None:
    side = bundle.input_size
    x = torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(1))
    targets = bundle.logits(x).argmax(1)
    maps = explain.attribute(bundle, x, METHOD, targets.tolist())
    data = MetricInput(bundle, x, maps, targets, MethodSpec.of(METHOD))

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        return explain.attribute(bundle, torch.as_tensor(inputs), METHOD, [int(t) for t in targets])

    print(f"\n{bundle.name}: {n} images of {side} x {side}, {samples} perturbations each, {METHOD}; "
          f"median of {repeats} runs, CPU ms per image")
    print(f"{'metric':<20} {'ours':>9} {'Quantus':>9} {'ratio':>7} {'bare':>9} {'ours/bare':>10}")
    assert bundle.cam_layer is not None
    for key, references in quantus_cases(samples, bundle.cam_layer).items():
        metric = get_metric(key)
        params = metric.resolve_params({"n_samples": samples, "seed": SEED})
        def compute(metric: Any = metric, params: dict = params) -> None:
            metric.compute(data, params)

        ours = cpu_seconds(compute, repeats)

        def theirs(references: list[Any] = references) -> None:
            for reference in references:
                np.random.seed(SEED)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    reference(model=bundle.model, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None],
                              explain_func=explain_func, device="cpu", batch_size=n)

        quantus_seconds = cpu_seconds(theirs, repeats)
        bare = cpu_seconds(bare_passes(bundle, data, samples, key == "relative_stability"), repeats)
        print(f"{key:<20} {ours / n * 1e3:>9.2f} {quantus_seconds / n * 1e3:>9.2f} {ours / quantus_seconds:>6.2f}x "
              f"{bare / n * 1e3:>9.2f} {ours / bare:>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16, help="images of the small CNN (the default model: a quarter)")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-model", action="store_true", help="skip the default model (EfficientNet-Lite0)")
    args = parser.parse_args()
    bench(small_cnn(), args.images, args.samples, args.repeats)
    if not args.no_model:
        bundle = explain.load_model(explain.DEFAULT_MODEL, device="cpu")
        bench(bundle, max(1, args.images // 4), max(1, args.samples // 2), args.repeats)


if __name__ == "__main__":
    main()
