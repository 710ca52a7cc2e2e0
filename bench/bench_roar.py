"""Wall time of the default ROAR run on the built-in MNIST subset, split into training
the base model, attribution, retraining and evaluation.

Runs in a fresh temporary cache (nothing reused) unless --cache DIR is given.
Usage: python bench/bench_roar.py [--threads N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: EXPLAIN_TRAIN_THREADS or 1)")
    parser.add_argument("--cache", default=None, help="cache dir (default: a fresh temporary one)")
    args = parser.parse_args()
    os.environ["EXPLAIN_CACHE_DIR"] = args.cache or tempfile.mkdtemp(prefix="bench_roar_")

    import torch

    from explain.metrics import roar
    from explain.data.training import mnist_subset
    from explain.models.small_cnn import training_threads

    t0 = time.perf_counter()
    dataset = mnist_subset()
    load_s = time.perf_counter() - t0
    settings = roar.RoarSettings(methods=tuple(roar.MethodSpec(m) for m in roar.DEFAULT_METHODS))
    store = roar.RoarStore()
    threads = args.threads or training_threads()
    print(f"torch {torch.__version__}, {threads} thread(s), {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")
    print(f"{dataset.describe()}; loaded in {load_s:.1f} s")
    print(f"methods: {', '.join(m.ident for m in settings.all_methods)}; fractions: {', '.join(f'{f:.0%}' for f in settings.fractions)}; "
          f"recipe: {settings.recipe}")
    t0 = time.perf_counter()
    summary = roar.run_roar(dataset, settings, store=store, threads=threads)
    total = time.perf_counter() - t0
    record = store.load(roar.experiment_key(dataset, settings))
    per_training = [e["seconds"] for e in record["entries"].values()]
    t = summary.timings
    print(f"\nwall time of the run: {total:.1f} s ({summary.done} retrainings)")
    for name in ("base_model", "attribution", "retraining", "evaluation"):
        print(f"  {name:<12} {t[name]:7.1f} s  ({t[name] / total:5.1%})")
    print(f"  median per retraining + evaluation: {statistics.median(per_training):.2f} s "
          f"(base model training {t['base_model']:.2f} s; ratio {statistics.median(per_training) / max(t['base_model'], 1e-9):.2f})")
    n_images = len(dataset.train_y) + len(dataset.test_y)
    print(f"  attribution: {t['attribution'] / n_images / len(settings.all_methods) * 1e3:.2f} ms per image and method "
          f"({n_images} images x {len(settings.all_methods)} rankings)")
    print(f"\nunmodified model accuracy: {summary.base_accuracy:.3f}")
    for row in summary.table():
        print("  " + " | ".join(f"{k}: {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
