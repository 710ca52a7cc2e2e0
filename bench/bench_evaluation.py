"""Issue 11's figures in one run: the batch evaluation (`python -m explain evaluate`)
against what it has to compute, the Ray executor against the local one, SIC/AIC against
the PAIR reference, and CPU batch sizes.

    .venv/bin/python bench/bench_evaluation.py [--images 32] [--ray-images 1000] [--ray-repeats 1] [--pic-images 1] \
        [--repeats 3]
    .venv/bin/python bench/bench_evaluation.py --batches      # only (d)

Models: the small CNN trained on the bundled MNIST subset for 1, 2 and 3 epochs (the
README's worked example; trained into `--checkpoints` when missing, about 20 s).

(a) Local executor: images per second of a run (3 checkpoints x `--images` MNIST
    images, Saliency and Grad-CAM, deletion/insertion at its default 32 steps, written
    to Parquet) against the bare passes that run needs, timed alone: per chunk the
    prediction pass, one forward+backward pass per image and method (to the input, as
    `bench_methods.py` counts them), and the metric's forward passes, at the batch
    sizes the run uses, on the run's own images unperturbed (deletion's partly zeroed
    images run faster on the CPU, so ours can beat 1.0x). One intra-op thread; CPU seconds of this
    process (user + system), the two interleaved, medians over `--repeats` (target:
    ours >= 0.9x the bare passes' images per second).
(b) Ray: wall seconds of the same settings on `--ray-images` images, run by
    `RayExecutor` on a local cluster it starts and stops (cluster start included), one
    actor with one thread, against the local executor with one thread, interleaved,
    `--ray-repeats` rounds (target <= 1.3x); and, for information, two actors (this
    machine's cores).
(c) SIC/AIC on EfficientNet-Lite0 against `saliency.metrics.pic` (the comparison of
    `bench_metrics.py`, same images, maps, seed masks and thresholds), with the
    largest difference between the two per-image AUCs (target <= 0.15x wall time).
(d) `--batches` (also run by default): milliseconds per image of forward and
    forward+backward passes by CPU batch size for EfficientNet-Lite0 and the small CNN
    (what `explain/metrics/batching.py` cites), one thread, sizes interleaved, medians.

With other jobs on the machine, wall time says how much of a core a run was given:
(a) uses CPU time; (b) and (c) need wall time (other processes, a thread pool), so the
load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import explain  # noqa: E402
from bench_batch_sizes import forward, forward_backward  # noqa: E402
from bench_metrics import SAMPLES, pic_comparison  # noqa: E402
from explain.analyses import run_directly  # noqa: E402
from explain.evaluation import (  # noqa: E402
    DataSource, Evaluation, EvaluationInputs, ExecutionOptions, MetricChoice, model_sources,
)
from explain.evaluation.compute import metric_passes  # noqa: E402
from explain.evaluation.sources import load_bundle  # noqa: E402
from explain.methods.registry import MethodSpec, get_method  # noqa: E402
from explain.metrics.batching import forward_batch_size  # noqa: E402
from explain.models.small_cnn import torch_threads  # noqa: E402

METHODS = ("saliency", "gradcam")


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def checkpoints(folder: Path) -> list[Path]:
    """small_cnn-e1/e2/e3.pt in `folder`, trained here when missing."""
    from explain.evaluation.cli import main as explain_main

    wanted = [folder / f"small_cnn-e{e}.pt" for e in (1, 2, 3)]
    if not all(p.is_file() for p in wanted):
        if explain_main(["train-small-cnn", "--epochs", "1,2,3", "--out", str(folder)]) != 0:
            raise SystemExit("training the small CNN failed")
    return wanted


def settings(ckpts: list[Path], images: int, out: Path, metrics=(("deletion_insertion", {}),)) -> Evaluation:
    data = DataSource.of("mnist" if images <= 1000 else "mnist-all", images)  # held-out 1,000, else all 5,000
    return Evaluation.of(model_sources(weights=[str(p) for p in ckpts], arch="small_cnn"), data,
                         tuple(MethodSpec.of(m) for m in METHODS), tuple(MetricChoice.of(k, p) for k, p in metrics),
                         out=out)


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def run_images(analysis: Evaluation) -> list[torch.Tensor]:
    """The run's images per chunk, as the models see them (prepared before timing)."""
    source = analysis.models[0]
    bundle = load_bundle(source, source.read(), "cpu")
    with analysis.data.open() as index:
        return [
            bundle.preprocess_batch(
                [raw.decode().image for raw in index.raw(range(s, min(s + analysis.chunk_size, len(index))))]
            )
            for s in range(0, len(index), analysis.chunk_size)
        ]


def bare_passes(analysis: Evaluation, chunks: list[torch.Tensor]) -> None:
    """The passes `analysis` needs, alone: per model and chunk, the prediction, one
    forward+backward pass per image and method's evaluation, the metrics' forward
    passes, at the run's batch sizes, on the run's own (unperturbed) images. Random
    inputs would not do: on the CPU the small CNN runs about 25 % slower on noise
    than on digits, and faster still on the partly zeroed images of deletion."""
    for source in analysis.models:
        bundle = load_bundle(source, source.read(), "cpu")
        for x in chunks:
            n = len(x)
            with torch.inference_mode():
                bundle.probabilities(x)
            for spec in analysis.methods:
                per = get_method(spec.key).evals_per_image(spec.resolved, bundle.input_size)
                rows, step = n * per, max(1, bundle.batch_size // per)
                for s in range(0, rows, step):
                    chunk = x[torch.arange(s, min(s + step, rows)) % n].clone().requires_grad_(True)
                    torch.autograd.grad(bundle.model(chunk)[:, 0].sum(), chunk)
            passes = metric_passes(analysis.methods, analysis.metrics, n, bundle.input_size)
            size = forward_batch_size(bundle, x.shape[1:])
            with torch.inference_mode():
                for s in range(0, passes, size):
                    bundle.model(x[torch.arange(s, min(s + size, passes)) % n]).softmax(1)


def part_a(ckpts: list[Path], images: int, repeats: int, work: Path) -> None:
    options = EvaluationInputs("local", ExecutionOptions(device="cpu", threads=1))
    ours, bare = [], []
    with torch_threads(1):
        for r in range(repeats + 1):  # the first round warms up (oneDNN kernels per shape, imports)
            out = work / f"a{r}"
            analysis = settings(ckpts, images, out)
            o = cpu_seconds(partial(run_directly, analysis, options))
            chunks = run_images(analysis)
            b = cpu_seconds(partial(bare_passes, analysis, chunks))
            shutil.rmtree(out)
            if r:
                ours.append(o)
                bare.append(b)
    total = 3 * images
    o, b = statistics.median(ours), statistics.median(bare)
    first = settings(ckpts, images, work / "count")
    passes = 1 + len(METHODS) + metric_passes(first.methods, first.metrics, 1, 28)
    print(
        f"\n(a) local executor, 3 small-CNN checkpoints x {images} MNIST images x {', '.join(METHODS)}, "
        f"deletion/insertion (32 steps), chunks of {first.chunk_size}; 1 thread, CPU seconds, median of {repeats}; "
        f"{load()}"
    )
    print(f"    {passes:.0f} passes per image and model: 1 prediction, {len(METHODS)} forward+backward, "
          f"{passes - 1 - len(METHODS):.0f} forward")
    print(f"    ours (evaluate_chunk, Parquet parts) : {o:7.2f} s  {total / o:8.1f} images/s")
    print(f"    bare forward(+backward) passes       : {b:7.2f} s  {total / b:8.1f} images/s")
    print(f"    ours / bare images per second        : {b / o:.3f}  (target >= 0.9)")


def part_b(ckpts: list[Path], images: int, repeats: int, work: Path) -> None:
    runs = {
        "local, 1 thread": EvaluationInputs("local", ExecutionOptions(device="cpu", threads=1)),
        "ray, 1 actor x 1 thread": EvaluationInputs("ray", ExecutionOptions(device="cpu", threads=1), workers=1),
        "ray, 2 actors x 1 thread": EvaluationInputs("ray", ExecutionOptions(device="cpu", threads=1), workers=2),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    loads = []
    for r in range(repeats):
        for name, inputs in runs.items():
            out = work / f"b{r}-{len(times[name])}-{name.split(',')[0]}"
            analysis = settings(ckpts, images, out)
            start = time.perf_counter()
            result = run_directly(analysis, inputs)
            times[name].append(time.perf_counter() - start)
            assert result.complete
            shutil.rmtree(out)
            loads.append(os.getloadavg()[0])
    local = statistics.median(times["local, 1 thread"])
    print(f"\n(b) Ray against local, 3 checkpoints x {images} images (as in (a)); wall seconds including the Ray "
          f"cluster's start and stop, median of {repeats}, interleaved; load average {min(loads):.2f}-{max(loads):.2f}")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"    {name:26s}: {m:7.2f} s  {3 * images / m:7.1f} images/s  ratio to local {m / local:.3f}"
              + ("  (target <= 1.3)" if name.startswith("ray, 1 actor") else ""))


def part_c(pic_images: int, repeats: int) -> None:
    bundle = explain.load_model(explain.DEFAULT_MODEL, device="cpu")
    print(f"\n(c) SIC/AIC against saliency.metrics.pic on {bundle.name}; {load()}")
    names = [n for n in SAMPLES if n in explain.sample_names()][:pic_images]
    x = bundle.preprocess_batch([explain.load_sample(n) for n in names])
    found = pic_comparison(bundle, x, {m: explain.attribute(bundle, x, m) for m in METHODS}, repeats)
    print(f"    ours / reference wall time: {found['ratio']:.3f}  (target <= 0.15); CPU time {found['cpu_ratio']:.3f}; "
          f"largest per-image AUC difference {found['auc_difference']:.2e}; {load()}")


def part_d(repeats: int) -> None:
    from explain.models.small_cnn import SmallCNN

    print(f"\n(d) milliseconds per image by CPU batch size, 1 thread, median of {repeats}, sizes interleaved; {load()}")
    lite = explain.load_model(explain.DEFAULT_MODEL, device="cpu")
    names = explain.sample_names()
    x_lite = lite.preprocess_batch([explain.load_sample(names[i % len(names)]) for i in range(32)])
    small = SmallCNN().eval()  # timings do not depend on the weights
    x_small = torch.randn(1024, 1, 28, 28)
    for label, model, x, sizes in (("EfficientNet-Lite0 (3x224x224)", lite.model, x_lite, (1, 2, 4, 8, 16, 32)),
                                   ("small CNN (1x28x28)", small, x_small, (16, 64, 128, 256, 512, 1024))):
        for name, run in (("forward", forward), ("forward+backward", forward_backward)):
            for size in sizes:
                run(model, x[: min(len(x), 2 * size)], size)  # warm-up per shape
            times: dict[int, list[float]] = {size: [] for size in sizes}
            for _ in range(repeats):
                for size in sizes:
                    start = time.perf_counter()
                    run(model, x, size)
                    times[size].append((time.perf_counter() - start) / len(x))
            med = {size: statistics.median(t) for size, t in times.items()}
            best = min(med.values())
            print(
                f"    {label:31s} {name:17s} "
                + "  ".join(f"b{s}: {med[s] * 1e3:6.2f} ({med[s] / best:.2f})" for s in sizes)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="(a): images per checkpoint")
    parser.add_argument("--ray-images", type=int, default=1000, help="(b): images per checkpoint")
    parser.add_argument("--ray-repeats", type=int, default=1, help="(b): rounds (each a run of minutes per executor)")
    parser.add_argument("--pic-images", type=int, default=1, help="(c): images (x 2 methods; the reference is slow)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--checkpoints", type=Path, default=None, help="folder of small_cnn-e1/e2/e3.pt (default: a temporary one)"
    )
    parser.add_argument("--batches", action="store_true", help="only (d): per-image cost by CPU batch size")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip, e.g. b,c")
    args = parser.parse_args()
    skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {load()}")
    if args.batches:
        part_d(args.repeats)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-evaluation-"))
    os.environ.setdefault("EXPLAIN_CACHE_DIR", str(work / "cache"))
    try:
        ckpts = checkpoints(args.checkpoints or work / "ckpts")
        if "a" not in skip:
            part_a(ckpts, args.images, args.repeats, work)
        if "b" not in skip:
            part_b(ckpts, args.ray_images, args.ray_repeats, work)
        if "c" not in skip:
            part_c(args.pic_images, args.repeats)
        if "d" not in skip:
            part_d(args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
