"""Benchmark of the faithfulness metrics on the default model.

1. Deletion + insertion at the default number of steps: seconds per image and method,
   and the ratio to the same number of bare forward passes at the same batch size
   (target: within 1.5x).
2. SIC + AIC: seconds of `explain.metrics.pic_metrics` against the PAIR `saliency`
   reference (`compute_pic_metric` once for SIC and once for AIC, per image and
   method) on the same images, maps, seed masks and thresholds (target: faster), and
   the largest difference between the per-image AUCs (`pic_comparison`, which
   `bench_evaluation.py` runs too).

Figures are medians over `--repeats` runs (the reference runs once: it is slow).

    python bench/bench_metrics.py [--images 3] [--methods gradcam saliency] [--repeats 3] [--pic-images 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explain  # noqa: E402
from explain.metrics import deletion_insertion, pic_metrics, random_seed_masks  # noqa: E402
from explain.metrics.deletion import DEFAULT_STEPS  # noqa: E402
from explain.metrics.pic import DEFAULT_THRESHOLDS, _model_input  # noqa: E402

SAMPLES = ["chelsea", "coffee", "astronaut", "rocket", "china"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare_forward_passes(bundle: explain.ModelBundle, count: int) -> None:
    x = torch.randn(bundle.batch_size, 3, bundle.input_size, bundle.input_size, device=bundle.device)
    with torch.inference_mode(), bundle.lock:
        for start in range(0, count, bundle.batch_size):
            bundle.model(x[: min(bundle.batch_size, count - start)]).float().softmax(1).cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["gradcam", "saliency"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument(
        "--pic-images", type=int, default=1, help="images for the SIC/AIC comparison (the reference is slow)"
    )
    args = parser.parse_args()

    bundle = explain.load_model(explain.DEFAULT_MODEL)
    names = [n for n in SAMPLES if n in explain.sample_names()][: args.images]
    x = bundle.preprocess_batch([explain.load_sample(n) for n in names])
    maps = {m: explain.attribute(bundle, x, m) for m in args.methods}
    print(
        f"model {bundle.name} on {bundle.device}, batch size {bundle.batch_size}, torch threads "
        f"{torch.get_num_threads()}"
    )
    print(f"images {names}, methods {args.methods}")

    # 1. Deletion + insertion against bare forward passes.
    passes = 2 * len(args.methods) * len(names) * (args.steps + 1)
    deletion_insertion(bundle, x[:1], {m: maps[m][:1] for m in args.methods}, steps=2)  # warm-up
    ours, bare = [], []
    for _ in range(args.repeats):
        ours.append(timed(lambda: deletion_insertion(bundle, x, maps, steps=args.steps)))
        bare.append(timed(lambda: bare_forward_passes(bundle, passes)))
    pairs = len(names) * len(args.methods)
    o, b = statistics.median(ours), statistics.median(bare)
    print(f"\n[deletion+insertion] steps {args.steps}: {passes} forward passes in all")
    print(f"  ours : {o:8.3f} s total, {o / pairs:.3f} s per image and method")
    print(f"  bare : {b:8.3f} s total, {b / pairs:.3f} s per image and method")
    print(f"  ratio ours / bare forward passes: {o / b:.3f}  (target <= 1.5)")

    # 2. SIC + AIC against the PAIR saliency reference.
    k = min(args.pic_images, len(names))
    pic_comparison(bundle, x[:k], {m: maps[m][:k] for m in args.methods}, args.repeats)


def pic_comparison(
    bundle: explain.ModelBundle, xs: torch.Tensor, maps: dict[str, np.ndarray], repeats: int
) -> dict[str, float]:
    """SIC + AIC of `explain.metrics.pic_metrics` against the PAIR reference
    (`compute_pic_metric` once for SIC and once for AIC, per image and method) on the
    same images, maps, seed masks and thresholds: wall and CPU seconds (ours: median of
    `repeats`, before and after the reference; the reference once), their ratios and the
    largest difference between the per-image AUCs. Prints and returns them."""
    from saliency.metrics import pic as reference

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # the reference calls np.trapz (removed in NumPy 2.4)
    k = xs.shape[0]
    seeds = random_seed_masks(k, bundle.input_size, bundle.input_size, seed=0)
    pic_metrics(bundle, xs[:1], {m: v[:1] for m, v in maps.items()}, seeds[:1])  # warm-up
    originals = bundle.to_display(xs)

    def probabilities(batch: np.ndarray) -> np.ndarray:
        return bundle.probabilities(_model_input(bundle, batch)).numpy()

    found: dict[tuple[str, str, int], float] = {}

    def run_reference() -> None:
        for i in range(k):
            cls = int(probabilities(originals[i : i + 1]).argmax())
            sic = lambda b, cls=cls: probabilities(b)[:, cls]  # noqa: E731
            aic = lambda b, cls=cls: (probabilities(b).argmax(1) == cls).astype(float)  # noqa: E731
            for m in maps:
                for metric, pred in (("sic", sic), ("aic", aic)):
                    try:
                        found[(metric, m, i)] = reference.compute_pic_metric(
                            originals[i], maps[m][i], seeds[i], pred, DEFAULT_THRESHOLDS, min_pred_value=0.0,
                            num_data_points=1000).auc
                    except reference.ComputePicMetricError:
                        pass

    ours: list[tuple[float, float]] = []
    results = []

    def run_ours() -> None:
        results.append(pic_metrics(bundle, xs, maps, seeds))

    ours.append(timed_both(run_ours))
    ref_wall, ref_cpu = timed_both(run_reference)
    ours += [timed_both(run_ours) for _ in range(max(0, repeats - 1))]
    wall, cpu = statistics.median(w for w, _ in ours), statistics.median(c for _, c in ours)
    differences = []
    for result in results:
        for metric, by_method in (("sic", result.sic), ("aic", result.aic)):
            for m, curves in by_method.items():
                kept = [i for i in range(k) if (metric, m, i) in found]
                if tuple(kept) != curves.kept:
                    raise AssertionError(f"{metric} {m}: the reference kept images {kept}, ours {list(curves.kept)}")
                differences += [abs(auc - found[(metric, m, i)]) for i, auc in zip(kept, curves.aucs, strict=True)]
    pairs = k * len(maps)
    out = {"ours": wall, "reference": ref_wall, "ratio": wall / ref_wall, "cpu_ratio": cpu / ref_cpu,
           "auc_difference": max(differences, default=float("nan")), "aucs": len(differences) // max(1, len(results))}
    print(f"\n[SIC+AIC] {k} image(s) x {len(maps)} method(s), {len(DEFAULT_THRESHOLDS)} thresholds, "
          f"{torch.get_num_threads()} torch threads (the CPU pool as many)")
    print(
        f"  ours      : {wall:8.3f} s wall, {cpu:8.3f} s CPU, {wall / pairs:.3f} s per image and method (median of "
        f"{len(ours)})"
    )
    print(f"  reference : {ref_wall:8.3f} s wall, {ref_cpu:8.3f} s CPU, {ref_wall / pairs:.3f} s per image and method "
          f"(saliency.metrics.pic, SIC + AIC)")
    print(
        f"  ratio ours / reference: {out['ratio']:.3f} wall, {out['cpu_ratio']:.3f} CPU; {out['aucs']} per-image AUCs, "
        f"largest difference {out['auc_difference']:.1e}"
    )
    return out


def timed_both(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU counts every thread of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


if __name__ == "__main__":
    main()
