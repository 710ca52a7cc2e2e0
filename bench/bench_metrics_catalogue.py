"""Benchmark of the metric catalogue (localisation and complexity) against Quantus 0.6.0.

For each new metric: CPU seconds per image of `get_metric(key).compute` (the registry's
path: normalisation, skipping, `Curves`) against Quantus's metric on the same maps and
masks (`a_batch`, `s_batch`; Quantus batched at its default batch size, 64), as the
ratio ours / Quantus (target: at most 0.5x). None of these metrics runs the model; the
"bare model passes" column gives the cost of the one forward pass per image they do
*not* need, on the default model at 224 px, to say what they cost beside an evaluation.

Figures are medians of `--repeats` runs, CPU time of this process (`time.process_time`),
measured in one run.

    python bench/bench_metrics_catalogue.py [--images 64] [--side 224] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explain.methods.registry import MethodSpec  # noqa: E402
from explain.metrics import MetricInput, get_metric  # noqa: E402
from explain.metrics.localisation import top_k_pixels  # noqa: E402
from timing import median_cpu_seconds as cpu_seconds  # noqa: E402  (bench/ is on the path when run as a script)


def main() -> None:
    import quantus

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-model", action="store_true", help="skip the bare forward pass of the default model")
    args = parser.parse_args()

    n, side = args.images, args.side
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(n, side, side)) + 0.3
    masks = np.zeros((n, side, side), dtype=bool)
    for i in range(n):
        y, x = rng.integers(0, side // 2, size=2)
        masks[i, y:y + side // 3, x:x + side // 3] = True
    x_batch = rng.random((n, 3, side, side)).astype(np.float32)
    quiet = {"disable_warnings": True}
    fraction = 0.05
    cases = {
        "pointing_game": (quantus.PointingGame(**quiet), {}),
        "attribution_localisation": (quantus.AttributionLocalisation(**quiet), {}),
        "relevance_mass_accuracy": (quantus.RelevanceMassAccuracy(**quiet), {}),
        "relevance_rank_accuracy": (quantus.RelevanceRankAccuracy(**quiet), {}),
        "top_k_intersection": (quantus.TopKIntersection(k=top_k_pixels(fraction, side * side), **quiet),
                               {"k_fraction": fraction}),
        "localisation_auc": (quantus.AUC(**quiet), {}),
        "sparseness": (quantus.Sparseness(**quiet), {}),
        "complexity": (quantus.Complexity(**quiet), {}),
        "effective_complexity": (quantus.EffectiveComplexity(**quiet), {}),
    }
    data = MetricInput(bundle=None, images=torch.zeros(n, 3, 1, 1), maps=maps,  # type: ignore[arg-type]
                       targets=torch.zeros(n, dtype=torch.long), method=MethodSpec.of("saliency"), masks=masks)
    a_batch, s_batch = maps[:, None], masks[:, None].astype(np.float64)

    model_ms = float("nan")
    if not args.no_model:
        import explain

        bundle = explain.load_model(explain.DEFAULT_MODEL, device="cpu")
        batch = torch.randn(8, 3, 224, 224)
        with torch.inference_mode():
            model_ms = cpu_seconds(lambda: bundle.model(batch), args.repeats) / 8 * 1e3

    model_name = "the default model" if not args.no_model else "(skipped)"
    print(f"{n} images of {side} x {side}, median of {args.repeats} runs, CPU ms per image; "
          f"one bare forward pass of {model_name}: {model_ms:.2f} ms/image")
    print(f"{'metric':<26} {'ours':>9} {'Quantus':>9} {'ratio':>7}  model passes")
    for key, (reference, params) in cases.items():
        metric = get_metric(key)
        resolved = metric.resolve_params(params)
        def compute(metric: object = metric, resolved: dict = resolved) -> None:
            metric.compute(data, resolved)  # type: ignore[attr-defined]

        ours = cpu_seconds(compute, args.repeats)

        def theirs(reference: object = reference) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference(model=None, x_batch=x_batch, y_batch=np.zeros(n, dtype=int),  # type: ignore[operator]
                          a_batch=a_batch.copy(), s_batch=s_batch)

        quantus_seconds = cpu_seconds(theirs, args.repeats)
        print(f"{key:<26} {ours / n * 1e3:>9.3f} {quantus_seconds / n * 1e3:>9.3f} {ours / quantus_seconds:>6.2f}x  0")


if __name__ == "__main__":
    main()
