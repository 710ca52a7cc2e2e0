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
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: EXPLAIN_TRAIN_THREADS or 1)"
    )
    parser.add_argument("--cache", default=None, help="cache dir (default: a fresh temporary one)")
    args = parser.parse_args()
    os.environ["EXPLAIN_CACHE_DIR"] = args.cache or tempfile.mkdtemp(prefix="bench_roar_")

    import torch

    from explain.analyses import RoarAnalysis, RoarInputs
    from explain.data.training import mnist_subset
    from explain.jobs import default_runner
    from explain.methods.registry import MethodSpec
    from explain.metrics import roar
    from explain.models.small_cnn import training_threads

    t0 = time.perf_counter()
    dataset = mnist_subset()
    load_s = time.perf_counter() - t0
    settings = roar.RoarSettings(methods=tuple(MethodSpec.of(m) for m in roar.DEFAULT_METHODS))
    threads = args.threads or training_threads()
    print(
        f"torch {torch.__version__}, {threads} thread(s), {os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(f"{dataset.describe()}; loaded in {load_s:.1f} s")
    print(
        f"methods: {', '.join(m.ident for m in settings.all_methods)}; fractions: "
        f"{', '.join(f'{f:.0%}' for f in settings.fractions)}; "
        f"recipe: {settings.recipe}"
    )
    analysis = RoarAnalysis.of(dataset, settings)
    t0 = time.perf_counter()
    job = default_runner().submit(analysis, RoarInputs(dataset, threads=threads))
    job.wait()
    total = time.perf_counter() - t0
    if job.state != "done":
        raise SystemExit(f"the run ended {job.state}: {job.error}")
    result = job.result
    scope = default_runner().store.shared(f"roar-{analysis.experiment}")
    per_training = [e["seconds"] for e in scope.json_records("entry-")]
    t = result.timings
    print(f"\nwall time of the run: {total:.1f} s ({result.done} retrainings)")
    for name in ("base_model", "attribution", "retraining", "evaluation"):
        print(f"  {name:<12} {t[name]:7.1f} s  ({t[name] / total:5.1%})")
    print(
        f"  median per retraining + evaluation: {statistics.median(per_training):.2f} s "
        f"(base model training {t['base_model']:.2f} s; ratio "
        f"{statistics.median(per_training) / max(t['base_model'], 1e-9):.2f})"
    )
    n_images = len(dataset.train_y) + len(dataset.test_y)
    print(f"  attribution: {t['attribution'] / n_images / len(settings.all_methods) * 1e3:.2f} ms per image and method "
          f"({n_images} images x {len(settings.all_methods)} rankings)")
    print(f"\nunmodified model accuracy: {result.base_accuracy:.3f}")
    print(result.table().to_string(float_format=lambda v: f"{v:.3f}"))

if __name__ == "__main__":
    main()
