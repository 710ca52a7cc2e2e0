"""Benchmark of the axiomatic metrics (completeness, non-sensitivity, input invariance)
against Quantus 0.6.0, and against the bare model passes they need.

On the small CNN of the MNIST benchmark (`explain.models.small_cnn.SmallCNN`, seeded
random weights, 1 x 28 x 28, the bundle's batch of 256; its layers in one Sequential,
since Quantus's input invariance shifts the model's first named module) and Saliency maps: CPU ms per
image of `get_metric(key).compute` against Quantus's metric on the same model, images
and maps at the batch size Quantus allows (its `batch_size`: all the images in one
batch), as the ratio ours / Quantus (target: at most 0.5x); and against timing the
model passes alone that the metric needs (the same number of forward passes in the
same chunks, and for input invariance the two Saliency maps per image), as the ratio
ours / bare. Completeness's black baseline is one image for all (n + 1 passes; Quantus
runs 2n). Non-sensitivity runs one cell per pixel (`grid` = 28) so both compute the
same thing (Quantus: one pixel per forward call, 785 calls). Quantus's input invariance
runs with the same Saliency as its `explain_func`.

Figures are medians of `--repeats` runs, CPU time of this process
(`time.process_time`), measured in one run.

    python bench/bench_catalogue_axiomatic.py [--images 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explain  # noqa: E402
from explain.methods.registry import MethodSpec  # noqa: E402
from explain.metrics import MetricInput, get_metric  # noqa: E402
from explain.metrics.batching import forward_batch_size  # noqa: E402
from explain.models.small_cnn import SmallCNN  # noqa: E402
from timing import median_cpu_seconds as cpu_seconds  # noqa: E402  (bench/ is on the path when run as a script)

SIDE = 28


def bare_forward(bundle: explain.ModelBundle, images: torch.Tensor, count: int) -> Callable[[], None]:
    """`count` forward passes in the metric's chunks, of the images themselves (one chunk
    made beforehand, reused)."""
    size = forward_batch_size(bundle, (1, SIDE, SIDE))
    chunk = images.repeat(-(-min(size, count) // len(images)), 1, 1, 1)[: min(size, count)]

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, count, size):
                bundle.model(chunk[: min(size, count - start)])

    return run


def main() -> None:
    import quantus

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.images
    torch.manual_seed(0)
    cnn = SmallCNN(1, 10, width=16)
    # flattened, so that the first module is the first convolution: Quantus shifts `named_modules()[1]`
    model = torch.nn.Sequential(*cnn.features, cnn.pool, torch.nn.Flatten(), cnn.fc)
    bundle = explain.make_bundle("small_cnn", model, [str(i) for i in range(10)], input_size=SIDE,
                                 mean=(0.0,), std=(1.0,), device="cpu", batch_size=256)
    x = torch.rand(n, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    targets = bundle.logits(x).argmax(1)
    spec = MethodSpec.of("saliency")
    maps = explain.attribute(bundle, x, "saliency", targets.tolist())
    data = MetricInput(bundle, x, maps, targets, spec)

    def saliency(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        copy = explain.make_bundle("copy", model, bundle.class_names, input_size=SIDE, mean=(0.0,), std=(1.0,),
                                   device="cpu", batch_size=256)
        return explain.attribute(copy, torch.as_tensor(inputs), "saliency", [int(t) for t in targets])[:, None]

    quiet = {"disable_warnings": True}
    fill = np.zeros((n, SIDE * SIDE), dtype=np.float32)  # the black baseline: 0 (mean 0, std 1)
    cases: dict[str, tuple[Any, dict[str, Any], dict[str, Any], Callable[[], None]]] = {
        "completeness": (quantus.Completeness(normalise=False, perturb_baseline=fill, **quiet), {}, {},
                         bare_forward(bundle, x, n + 1)),
        "non_sensitivity": (quantus.NonSensitivity(perturb_baseline=0.0, **quiet), {"grid": SIDE, "baseline": "zero"},
                            {}, bare_forward(bundle, x, n * (SIDE * SIDE + 1))),
        "input_invariance": (quantus.InputInvariance(**quiet), {}, {"explain_func": saliency},
                             lambda: (bare_forward(bundle, x, 2 * n)(),
                                      [explain.attribute(bundle, images, "saliency", targets.tolist())
                                       for images in (x, x - 1.0)])),
    }
    print(f"{n} images of 1 x {SIDE} x {SIDE}, small CNN, Saliency maps; median of {args.repeats} runs, "
          "CPU ms per image")
    print(f"{'metric':<18} {'ours':>9} {'Quantus':>9} {'ratio':>7} {'bare passes':>12} {'ours/bare':>10}")
    for key, (reference, params, extra, bare) in cases.items():
        metric = get_metric(key)
        resolved = metric.resolve_params(params)

        def compute(metric: Any = metric, resolved: dict = resolved) -> None:
            metric.compute(data, resolved)

        def theirs(reference: Any = reference, extra: dict = extra) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference(model=bundle.model, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None],
                          device="cpu", batch_size=n, **extra)

        ours = cpu_seconds(compute, args.repeats)
        quantus_seconds = cpu_seconds(theirs, args.repeats)
        bare_seconds = cpu_seconds(bare, args.repeats)
        print(f"{key:<18} {ours / n * 1e3:>9.3f} {quantus_seconds / n * 1e3:>9.3f} {ours / quantus_seconds:>6.2f}x "
              f"{bare_seconds / n * 1e3:>12.3f} {ours / bare_seconds:>9.2f}x")


if __name__ == "__main__":
    main()
