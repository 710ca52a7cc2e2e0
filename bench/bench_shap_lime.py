"""Seconds per image of the SHAP and LIME variants at their default settings on the
default model (EfficientNet-Lite0), against the cost of the model evaluations they make.

    python bench/bench_shap_lime.py [--images chelsea coffee astronaut] [--repeats 1]

For each method: median seconds per image over the images (first-call costs, such as
numba compiling shap's partition tree, are paid in a warm-up call and printed apart),
the number of model evaluations per image, the time of one bare evaluation (forward
for LIME and partition SHAP, forward + backward for gradient SHAP, in full batches,
measured right after the method) and the ratio of the method's time to that of its
evaluations alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explain  # noqa: E402

METHODS = ["shap_gradient", "shap_partition", "lime"]


def seconds_per_eval(bundle: explain.ModelBundle, with_backward: bool, repeats: int = 3) -> float:
    """Time of one image's forward (+ backward) pass, in full batches."""
    x = torch.randn(bundle.batch_size, 3, bundle.input_size, bundle.input_size, device=bundle.device)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        if with_backward:
            xg = x.clone().requires_grad_(True)
            bundle.model(xg)[:, 0].sum().backward()
        else:
            with torch.no_grad():
                bundle.model(x)
        if bundle.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) / bundle.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["chelsea", "coffee", "astronaut"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    bundle = explain.load_model()
    batch = bundle.preprocess_batch([explain.load_sample(n) for n in args.images])
    print(
        f"model {bundle.name} on {bundle.device}, batch size {bundle.batch_size}, torch threads "
        f"{torch.get_num_threads()}, "
        f"{len(args.images)} images {args.images}"
    )
    print(f"{'method':<24}{'warm-up s':>10}{'s/image':>10}{'evals':>7}{'ms/eval':>9}{'ratio':>7}  defaults")
    for key in METHODS:
        method = explain.get_method(key)
        params = method.resolve_params({})
        start = time.perf_counter()
        explain.attribute(bundle, batch[:1], key)
        warmup = time.perf_counter() - start
        per_image = []
        for _ in range(args.repeats):
            for i in range(batch.shape[0]):
                start = time.perf_counter()
                explain.attribute(bundle, batch[i : i + 1], key)
                per_image.append(time.perf_counter() - start)
        median = statistics.median(per_image)
        # The bare passes, measured right after the method: the machine's load drifts.
        per_eval = seconds_per_eval(bundle, with_backward=key == "shap_gradient")
        evals = method.evals_per_image(params, bundle.input_size)
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        ratio = median / (evals * per_eval)
        print(f"{method.label:<24}{warmup:>10.2f}{median:>10.2f}{evals:>7}{per_eval * 1e3:>9.1f}{ratio:>7.2f}  {shown}")


if __name__ == "__main__":
    main()
