"""Per-image cost of the default model's passes at each chunk size on this machine: the
measurement behind `default_batch_size` on the CPU.

    .venv/bin/python bench/bench_batch_sizes.py [--sizes 1 2 4 8 16 32] [--images 32] [--repeats 5]

For each chunk size, `--images` real sample photos go through the model in chunks of
that size: forward passes under `inference_mode` (what deletion/insertion, SIC/AIC and
Occlusion run) and forward+backward passes to the input (what the gradient methods
run). Sizes are interleaved within each repeat, so load drifts hit them alike; the
figure is the median over repeats of milliseconds per image, and its ratio to the best
size. One thread by default: with two threads on a shared 2-core machine, OpenMP's
barriers wait on descheduled threads and the figures swing tenfold. Run with
EXPLAIN_MALLOC_THRESHOLD=off to see the sizes without the allocator fix.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import explain  # noqa: E402
from explain.models.bundle import default_batch_size  # noqa: E402


def forward(model: torch.nn.Module, x: torch.Tensor, size: int) -> None:
    with torch.inference_mode():
        for chunk in x.split(size):
            model(chunk)


def forward_backward(model: torch.nn.Module, x: torch.Tensor, size: int) -> None:
    for chunk in x.split(size):
        chunk = chunk.clone().requires_grad_(True)
        torch.autograd.grad(model(chunk)[:, 0].sum(), chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default 1: steady on a shared CPU)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = explain.load_model(device="cpu")
    names = explain.sample_names()
    x = bundle.preprocess_batch([explain.load_sample(names[i % len(names)]) for i in range(args.images)])
    print(f"{bundle.name}, {torch.get_num_threads()} threads, allocator threshold {explain.allocator.applied}, "
          f"{args.images} images per measurement, median of {args.repeats}, load average {os.getloadavg()[0]:.2f}; "
          f"default CPU chunk now {default_batch_size(torch.device('cpu'))}")
    for label, run in (("forward", forward), ("forward+backward", forward_backward)):
        for size in args.sizes:  # warm-up: oneDNN builds its kernels per shape
            run(bundle.model, x[: 2 * size], size)
        times: dict[int, list[float]] = {size: [] for size in args.sizes}
        for _ in range(args.repeats):
            for size in args.sizes:
                start = time.perf_counter()
                run(bundle.model, x, size)
                times[size].append((time.perf_counter() - start) / args.images)
        med = {size: statistics.median(t) for size, t in times.items()}
        best = min(med.values())
        print(
            f"{label:17s} "
            + "  ".join(f"b{size}: {med[size] * 1e3:5.1f} ms ({med[size] / best:.2f})" for size in args.sizes)
        )


if __name__ == "__main__":
    main()
