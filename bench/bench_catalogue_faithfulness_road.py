"""Benchmark of the faithfulness catalogue, part 1 (ROAD, faithfulness correlation and
estimate, monotonicity and monotonicity correlation) against Quantus 0.6.0.

On a seeded random CNN over one-channel 28 x 28 images (the only images Quantus's ROAD
accepts: see `explain/metrics/road.py`), with the same maps and matched settings (ROAD:
Quantus's 50 percentages; faithfulness correlation: 100 subsets of 224 pixels; the
others: groups of 4 pixels, Quantus's `features_in_step=4`; monotonicity correlation: 10
samples per group of 16 pixels), this prints per metric the CPU milliseconds per image of
`get_metric(key).compute` (the registry's path) and of Quantus's metric called on the
whole batch (its batch size: all the images), their ratio (target: at most 0.5x), and
the cost of the bare model passes the metric needs (`passes(params, n)` images through
the model in batches of `forward_batch_size`, nothing else) with ours / bare.

Figures are medians of `--repeats` runs, CPU time of this process (`time.process_time`),
measured in one run, with one thread.

    python bench/bench_catalogue_faithfulness_road.py [--images 16] [--repeats 3]
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
from explain.metrics.batching import forward_batch_size  # noqa: E402
from explain.metrics.registry import Metric  # noqa: E402
from timing import median_cpu_seconds  # noqa: E402  (bench/ is on the path when run as a script)

SIDE = 28


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10)).eval()


def cases(quantus: Any) -> dict[str, tuple[dict[str, Any], Callable[[], Any]]]:
    """Per metric: our parameters, and the Quantus metric with the same settings."""
    quiet = {"disable_warnings": True}
    pixels = SIDE * SIDE
    return {
        "road": ({"steps": 50}, lambda: quantus.ROAD(**quiet)),
        "faithfulness_correlation": (
            {"runs": 100, "subset_fraction": 224 / pixels, "substrate": "zero"},
            lambda: quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, perturb_baseline=0.0,
                                                    return_aggregate=False, **quiet)),
        "faithfulness_estimate": ({"steps": pixels // 4, "substrate": "zero"},
                                  lambda: quantus.FaithfulnessEstimate(features_in_step=4, perturb_baseline=0.0,
                                                                       **quiet)),
        "monotonicity": ({"steps": pixels // 4, "substrate": "zero"},
                         lambda: quantus.Monotonicity(features_in_step=4, perturb_baseline=0.0, **quiet)),
        "monotonicity_correlation": ({"steps": pixels // 16, "n_samples": 10},
                                     lambda: quantus.MonotonicityCorrelation(nr_samples=10, features_in_step=16,
                                                                             **quiet)),
    }


def main() -> None:
    import quantus

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    n = args.images
    model = small_cnn()
    bundle = explain.make_bundle("small_cnn", model, [str(i) for i in range(10)], input_size=SIDE, mean=(0.0,),
                                 std=(1.0,), device="cpu", batch_size=256)
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, SIDE, SIDE)).astype(np.float32)
    maps = rng.normal(size=(n, SIDE, SIDE))
    with torch.no_grad():
        targets = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    data = MetricInput(bundle, torch.from_numpy(x), maps, torch.from_numpy(targets), MethodSpec.of("saliency"))
    chunk = forward_batch_size(bundle, x.shape[1:])

    print(f"{n} images of 1 x {SIDE} x {SIDE}, seeded random CNN, median of {args.repeats} runs, CPU ms per image "
          f"(one thread); Quantus batch = {n} images, ours {chunk} per model pass")
    print(f"{'metric':<26} {'passes':>7} {'ours':>9} {'Quantus':>9} {'ratio':>7} {'bare':>8} {'ours/bare':>9}")
    road_ratio = float("nan")
    for key, (params, make) in cases(quantus).items():
        metric = get_metric(key)
        assert isinstance(metric, Metric)
        resolved = metric.resolve_params(params)
        passes = metric.passes(resolved, n)

        def ours(metric: Metric = metric, resolved: dict = resolved) -> None:
            metric.compute(data, resolved)

        def theirs(make: Callable[[], Any] = make) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make()(model=model, x_batch=x, y_batch=targets, a_batch=maps[:, None], device="cpu", batch_size=n)

        def bare(passes: int = passes) -> None:
            batch = torch.from_numpy(x[np.arange(chunk) % n])
            with torch.inference_mode():
                for start in range(0, passes, chunk):
                    model(batch[:min(chunk, passes - start)])

        mine, reference, model_only = (median_cpu_seconds(fn, args.repeats) for fn in (ours, theirs, bare))
        print(f"{key:<26} {passes // n:>7} {mine / n * 1e3:>9.2f} {reference / n * 1e3:>9.2f} "
              f"{mine / reference:>6.2f}x {model_only / n * 1e3:>8.2f} {mine / model_only:>8.2f}x")
        if key == "road":
            road_ratio = mine / reference
    print(f"ROAD here computes MoRF and LeRF, Quantus MoRF only: per curve, ours / Quantus = {road_ratio / 2:.2f}x")


if __name__ == "__main__":
    main()
