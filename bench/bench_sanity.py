"""Cost of a cascading model-randomisation run (the sanity check of Adebayo et al.)
against the bare passes it needs, on the default model.

    .venv/bin/python bench/bench_sanity.py [--images 4] [--steps 8] [--repeats 3] [--methods saliency,gradcam]

Per method: seconds of `cascading_randomisation` on `--images` images (the trained
model's maps given, as on the page), the bare forward+backward passes the run needs
(`Metric.cost`: one map per image and step, each the method's own passes) timed in the
same run at the bundle's batch size, and their ratio. The rest is split into what
surrounds the maps: copying and re-initialising the model (per step) and the four
similarities (Spearman of |map| and signed, SSIM, HOG) per image and step. Medians over
`--repeats`, CPU time of this process (user + system), so other load on the machine
does not decide the ratios.
"""

from __future__ import annotations

import argparse
import copy
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_methods import SAMPLES, forward_backward  # noqa: E402
from timing import median_cpu_seconds  # noqa: E402
import explain  # noqa: E402
from explain.methods.registry import MethodSpec  # noqa: E402
from explain.metrics import MetricInput, get_metric  # noqa: E402
from explain.metrics.randomisation import forward_order, group_layers, layer_generator  # noqa: E402
from explain.metrics.similarity import SIMILARITIES  # noqa: E402
from explain.models.reinit import reinitialise  # noqa: E402


def similarities_of(maps: np.ndarray, shuffled: np.ndarray) -> list[float]:
    """Every similarity between each map and its shuffled copy (what the sanity checks compute per step)."""
    return [s.compute(maps[i], shuffled[i]) for s in SIMILARITIES for i in range(len(maps))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="randomisation steps (max_steps)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="saliency,gradcam,guided_backprop")
    args = parser.parse_args()

    bundle = explain.load_model()
    x = bundle.preprocess_batch([explain.load_sample(SAMPLES[i % len(SAMPLES)]) for i in range(args.images)])
    n, size = x.shape[0], bundle.input_size
    targets = bundle.logits(x).argmax(1)
    metric = get_metric("cascading_randomisation")
    params = metric.resolve_params({"max_steps": args.steps})
    print(f"model {bundle.name}, {torch.get_num_threads()} threads, batch size {bundle.batch_size}, {n} images, "
          f"{args.steps} cascading steps, median CPU seconds of {args.repeats}")

    layers = group_layers(bundle.model, forward_order(bundle.model, x[:1]))

    def copy_and_randomise() -> None:
        with bundle.lock:
            model = copy.deepcopy(bundle.model)
        for index in range(len(layers)):
            for name in layers[index].modules:
                reinitialise(model.get_submodule(name), layer_generator(0, index))

    copying = median_cpu_seconds(copy_and_randomise, args.repeats)
    print(
        f"copy of the model + re-initialising all {len(layers)} layers: {copying:.3f} s (once per run; each step "
        "re-draws only its layers)"
    )
    print(f"\n{'method':18s} {'run s':>8s} {'passes':>7s} {'bare s':>8s} {'ratio':>6s} {'similarities s':>15s}")
    for key in [k for k in args.methods.split(",") if k]:
        spec = MethodSpec.of(key)
        maps = explain.attribute(bundle, x, key, targets.tolist())
        data = MetricInput(bundle, x, maps, targets, spec)
        metric.compute(MetricInput(bundle, x[:1], maps[:1], targets[:1], spec), params)  # warm-up
        run = median_cpu_seconds(partial(metric.compute, data, params), args.repeats)
        passes = metric.cost(params, n, spec, size)
        bare = median_cpu_seconds(partial(forward_backward, bundle, passes), args.repeats)
        shuffled = np.random.default_rng(0).permutation(maps.reshape(n, -1), axis=1).reshape(maps.shape)
        similarities = (
            median_cpu_seconds(
                partial(similarities_of, maps, shuffled), args.repeats
            )
            * args.steps
        )
        print(f"{key:18s} {run:8.2f} {passes:7d} {bare:8.2f} {run / bare:6.2f} {similarities:15.2f}")


if __name__ == "__main__":
    main()
