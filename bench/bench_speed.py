"""Issue 15's figures in one run: this project against the peer libraries, and the
default model's fast form against the form it had before.

    .venv/bin/python bench/bench_speed.py [--images 8] [--repeats 5] [--threads 1]

The peers are installed for this benchmark only (not in requirements.txt), into the
same venv, without changing any installed package:

    .venv/bin/pip install --no-deps quantus==0.6.0 cachetools   # its opencv-python would shadow opencv-python-headless
    .venv/bin/pip install grad-cam==1.5.7                      # pytorch-grad-cam (adds only ttach)

A missing peer is skipped with a line saying so. Everything runs on the CPU with
`--threads` intra-op threads (default 1, as the issue measured: with two threads on a
shared 2-core machine OpenMP's barriers wait on descheduled threads and figures swing
tenfold). Times are CPU seconds of this process (user + system), medians over
`--repeats`, the two sides of a ratio interleaved: with other jobs on the machine, wall
time mostly says how much of a core a run was given.

1. Deletion per curve against Quantus's `PixelFlipping`, like for like: the same model
   object (the fast form), the same images (sample photos, normalised as the model
   wants), the same Grad-CAM maps and classes, the zero substrate (0 after
   normalisation: `perturb_baseline=0.0`), softmax probabilities, and the same number
   of steps. Quantus broadcasts a (N, 1, H, W) map over the colour channels and flips
   `features_in_step` of the 3*H*W values per step, and insists that H*W be a multiple
   of `features_in_step`; 48 steps is the nearest count both accept (3136 values per
   step for Quantus; `steps=48` here, which evaluates the unperturbed image too: 49
   passes per curve against Quantus's 48). Each library batches as it does by default:
   Quantus one forward pass per step over its batch (all N images), ours chunks of
   `bundle.batch_size` over every (image, step). Ours computes deletion and insertion
   in one call; per curve = its time / (2 x images).
2. Grad-CAM against pytorch-grad-cam's `GradCAM` at batch 1, 8 and 32, and against
   Grad-CAM as it was before (the input requiring grad: the whole graph recorded): the same
   weights and layer (`_head_act`), the same classes (`ClassifierOutputTarget`). It
   needs parameters that require grad (its hooks read gradients of the layer output),
   so it gets a copy of the fast form with `requires_grad_(True)`. Ours goes through
   `explain.attribute` (chunks of `bundle.batch_size`). Peak memory: the growth of the
   peak RSS (`ru_maxrss`) over the first call, in a fresh process per configuration
   (torch allocates outside Python, so tracemalloc would not see it).
3. A 16-image Grad-CAM cache hit with `target=None`, and the forward passes it ran.
4. The default model's forward and forward+backward passes per image at the bundle's
   chunk size: the fast form (nn.ReLU6, native padding) and the split form that
   Guided Backprop / DeepLIFT use, against the form it had before (ReLU + clamp, F.pad
   before every convolution).
5. The allocator: user and kernel CPU time per image of 16-image forward passes, with
   `EXPLAIN_MALLOC_THRESHOLD` at its default and `off`, each in a fresh process.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import explain  # noqa: E402
from explain.metrics import deletion_insertion  # noqa: E402
from explain.models.bundle import share_tensors  # noqa: E402
from explain.models.efficientnet_lite import EfficientNetLite  # noqa: E402

SAMPLES = ["chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower", "hubble"]
QUANTUS_STEPS = 48


def images(bundle: explain.ModelBundle, n: int) -> torch.Tensor:
    names = [SAMPLES[i % len(SAMPLES)] for i in range(n)]
    return bundle.preprocess_batch([explain.load_sample(name) for name in names])


def interleaved(fns: dict[str, callable], repeats: int) -> dict[str, float]:
    """Median CPU seconds of this process (`time.process_time`: user + system, all its
    threads) of each function, called in turn within every repeat (after one warm-up
    each). CPU time, not wall time: on this shared machine the wall time of a one-thread
    run mostly measures the share of a core the scheduler gave it."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.process_time()
            fn()
            times[key].append(time.process_time() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def pixel_flipping(bundle: explain.ModelBundle, x: torch.Tensor, maps: np.ndarray, targets: np.ndarray):
    try:
        import quantus
    except ImportError:
        return None
    h, w = x.shape[-2:]
    metric = quantus.PixelFlipping(features_in_step=3 * h * w // QUANTUS_STEPS, perturb_baseline=0.0, normalise=False,
                                   abs=False, disable_warnings=True, display_progressbar=False)
    x_np, a_np = x.numpy(), maps[:, None].astype(np.float32)

    def run() -> list:
        return metric(model=bundle.model, x_batch=x_np, y_batch=targets, a_batch=a_np, device="cpu", softmax=True,
                      batch_size=len(x_np))

    return run


def bench_deletion(bundle: explain.ModelBundle, n: int, repeats: int) -> None:
    x = images(bundle, n)
    targets = bundle.logits(x).argmax(1)
    maps = explain.attribute(bundle, x, "gradcam", targets.tolist())
    print(f"\n[1] deletion per curve, {n} images, Grad-CAM maps, zero substrate, {QUANTUS_STEPS} steps")
    ours = lambda: deletion_insertion(bundle, x, {"gradcam": maps}, targets.tolist(), steps=QUANTUS_STEPS)  # noqa: E731
    quantus_run = pixel_flipping(bundle, x, maps, targets.numpy())
    if quantus_run is None:
        print("  Quantus is not installed: skipped (pip install --no-deps quantus==0.6.0 cachetools)")
        t = interleaved({"ours": ours}, repeats)
        print(f"  ours   : {t['ours'] / (2 * n) * 1e3:7.1f} ms per curve ({QUANTUS_STEPS + 1} passes)")
        return
    curves = np.asarray(quantus_run())
    mine = ours().deletion["gradcam"].curves
    print(
        f"  check: Quantus curves {curves.shape}, ours {mine.shape}; mean |difference| of the probabilities at "
        f"matching fractions {np.abs(curves - mine[:, 1:]).mean():.3f} (Quantus flips channel values, we flip pixels)"
    )
    t = interleaved({"ours": ours, "quantus": quantus_run}, repeats)
    o, q = t["ours"] / (2 * n), t["quantus"] / n
    print(f"  ours   : {o * 1e3:7.1f} CPU ms per curve ({QUANTUS_STEPS + 1} passes, chunks of {bundle.batch_size})")
    print(f"  Quantus: {q * 1e3:7.1f} CPU ms per curve ({QUANTUS_STEPS} passes, batches of {n})")
    print(f"  ratio ours / Quantus PixelFlipping: {o / q:.2f}  (target <= 1.0)")


def whole_graph_gradcam(bundle: explain.ModelBundle, x: torch.Tensor, targets: list[int]) -> torch.Tensor:
    """Grad-CAM as it was before this issue: the input requires grad, so autograd records
    the whole network; chunks of `bundle.batch_size`."""
    maps = []
    layer = bundle.model.get_submodule(bundle.cam_layer)
    for xc, tc in zip(x.split(bundle.batch_size), torch.tensor(targets).split(bundle.batch_size), strict=True):
        store = {}
        handle = layer.register_forward_hook(lambda m, i, o, store=store: store.setdefault("a", o))
        try:
            xc = xc.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(bundle.model(xc).gather(1, tc[:, None]).sum(), store["a"])
        finally:
            handle.remove()
        cam = torch.relu(torch.einsum("nk,nkhw->nhw", grad.mean(dim=(2, 3)), store["a"].detach()))
        maps.append(torch.nn.functional.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear")[:, 0])
    return torch.cat(maps)


def gradcam_runner(kind: str, bundle: explain.ModelBundle, x: torch.Tensor, targets: list[int]):
    if kind == "ours":
        return lambda: explain.attribute(bundle, x, "gradcam", targets)
    if kind == "whole-graph":
        return lambda: whole_graph_gradcam(bundle, x, targets)
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = copy.deepcopy(bundle.model).requires_grad_(True)
    cam = GradCAM(model=model, target_layers=[model.get_submodule(bundle.cam_layer)])
    wanted = [ClassifierOutputTarget(t) for t in targets]
    return lambda: cam(input_tensor=x, targets=wanted)


def probe(kind: str, targets: list[int], threads: int) -> None:
    """In a fresh process: peak RSS growth over the first Grad-CAM call (the first pass
    through the model in that process, so no earlier pass left memory behind to reuse)."""
    torch.set_num_threads(threads)
    bundle = explain.load_model(device="cpu")
    x = images(bundle, len(targets))
    run = gradcam_runner(kind, bundle, x, targets)
    print(json.dumps({"peak_mib": peak_growth_kib(run) / 1024}))


def peak_growth_kib(fn) -> float:
    """Growth of the peak resident set over `fn()`: the high-water mark is reset first
    (`/proc/self/clear_refs`, Linux), else it is `ru_maxrss` growth (0 while below an
    earlier peak)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        status = lambda key: int(next(line for line in Path("/proc/self/status").read_text().splitlines()  # noqa: E731
                                      if line.startswith(key)).split()[1])
        before = status("VmRSS:")
        fn()
        return status("VmHWM:") - before
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def peak_mib(kind: str, targets: list[int], threads: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--probe", kind, ",".join(map(str, targets)), "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def bench_gradcam(bundle: explain.ModelBundle, repeats: int, threads: int) -> None:
    print("\n[2] Grad-CAM against pytorch-grad-cam (same weights, layer, classes)")
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        print("  pytorch-grad-cam is not installed: skipped (pip install grad-cam==1.5.7)")
        return
    for batch in (1, 8, 32):
        x = images(bundle, batch)
        targets = bundle.logits(x).argmax(1).tolist()
        runs = {kind: gradcam_runner(kind, bundle, x, targets) for kind in ("ours", "whole-graph", "pytorch-grad-cam")}
        ours, theirs = runs["ours"](), runs["pytorch-grad-cam"]()
        scaled = ours - ours.min(axis=(1, 2), keepdims=True)
        scaled /= np.maximum(scaled.max(axis=(1, 2), keepdims=True), 1e-12)
        t = interleaved(runs, repeats)
        mem = {kind: peak_mib(kind, targets, threads) for kind in runs}
        chunk = min(batch, bundle.batch_size)
        print(f"  batch {batch:2d} (our chunks of {chunk}): CPU ms per image / peak RSS growth of the first call: "
              f"ours {t['ours'] / batch * 1e3:.1f} / +{mem['ours']:.0f} MiB, "
              f"before (whole graph) {t['whole-graph'] / batch * 1e3:.1f} / +{mem['whole-graph']:.0f} MiB, "
              f"pytorch-grad-cam {t['pytorch-grad-cam'] / batch * 1e3:.1f} / +{mem['pytorch-grad-cam']:.0f} MiB")
        print(f"            ratio ours / pytorch-grad-cam {t['ours'] / t['pytorch-grad-cam']:.2f} (target <= 0.5), "
              f"ours / before {t['ours'] / t['whole-graph']:.2f}; min-max scaled maps differ from pytorch-grad-cam's "
              f"by at most {np.abs(scaled - theirs).max():.3f}")


def bench_cache_hit(bundle: explain.ModelBundle, repeats: int) -> None:
    x = images(bundle, 16)
    digests = [f"bench-{i}" for i in range(16)]  # 16 distinct entries, whatever the photos
    cache = explain.AttributionCache()
    explain.cached_attribute(cache, bundle, x, digests, "gradcam")  # fills the cache and the top-1 classes
    calls = []
    handle = bundle.model.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        t = interleaved(
            {"hit": lambda: explain.cached_attribute(cache, bundle, x, digests, "gradcam")}, max(repeats, 20)
        )
    finally:
        handle.remove()
    print(f"\n[3] 16-image cache hit, target=None: {t['hit'] * 1e3:.2f} CPU ms (target <= 5 ms), "
          f"forward passes during the hits: {len(calls)}")


def bench_forms(bundle: explain.ModelBundle, repeats: int) -> None:
    before = share_tensors(bundle.model, EfficientNetLite(rectifiers="split", explicit_padding=True).eval())
    forms = {"fast": bundle.model, "split": bundle.rectifier_model, "before": before}
    x = images(bundle, bundle.batch_size)

    def forward(model):
        def run():
            with torch.inference_mode():
                model(x)
        return run

    def forward_backward(model):
        def run():
            xg = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xg)[:, 0].sum(), xg)
        return run

    print(f"\n[4] default model, {len(x)} images per pass (CPU ms per image; ratio to the form before)")
    for label, make in (("forward", forward), ("forward+backward", forward_backward)):
        t = interleaved({k: make(m) for k, m in forms.items()}, repeats)
        print(
            f"  {label:17s} fast {t['fast'] / len(x) * 1e3:5.1f} ({t['fast'] / t['before']:.2f}x), "
            f"split {t['split'] / len(x) * 1e3:5.1f} ({t['split'] / t['before']:.2f}x), before "
            f"{t['before'] / len(x) * 1e3:5.1f}"
        )


def cpu_probe(threads: int) -> None:
    """In a fresh process: user and system CPU seconds per image of 16-image forward passes."""
    torch.set_num_threads(threads)
    bundle = explain.load_model(device="cpu")
    x = torch.randn(16, 3, 224, 224)
    with torch.inference_mode():
        for _ in range(2):
            bundle.model(x)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        for _ in range(6):
            bundle.model(x)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    n = 6 * 16
    print(json.dumps({"user": (r1.ru_utime - r0.ru_utime) / n, "sys": (r1.ru_stime - r0.ru_stime) / n, "wall": wall / n,
                      "threshold": explain.allocator.applied}))


def bench_allocator(threads: int, repeats: int) -> None:
    print("\n[5] allocator: 16-image forward passes, CPU time per image (fresh process each, median of "
          f"{max(3, repeats // 2)})")
    results = {"default": [], "off": []}
    for _ in range(max(3, repeats // 2)):
        for label, value in (("default", None), ("off", "off")):
            env = dict(os.environ)
            env.pop("EXPLAIN_MALLOC_THRESHOLD", None)
            if value:
                env["EXPLAIN_MALLOC_THRESHOLD"] = value
            out = subprocess.run([sys.executable, __file__, "--cpu-probe", "--threads", str(threads)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            results[label].append(json.loads(out.strip().splitlines()[-1]))
    for rows in results.values():
        med = {k: statistics.median(r[k] for r in rows) for k in ("user", "sys", "wall")}
        user, system, wall = (med[k] * 1e3 for k in ("user", "sys", "wall"))
        threshold = rows[0]["threshold"]
        print(f"  threshold {threshold!s:>10}: user {user:5.1f} ms, sys {system:5.1f} ms, wall {wall:5.1f} ms/image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--probe", nargs=2, metavar=("KIND", "TARGETS"), help=argparse.SUPPRESS)
    parser.add_argument("--cpu-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args.probe[0], [int(t) for t in args.probe[1].split(",")], args.threads)
    if args.cpu_probe:
        return cpu_probe(args.threads)
    torch.set_num_threads(args.threads)
    bundle = explain.load_model(device="cpu")
    print(f"{bundle.name}, torch {torch.__version__}, {args.threads} thread(s), chunk {bundle.batch_size}, "
          f"allocator threshold {explain.allocator.applied}, median of {args.repeats}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    bench_deletion(bundle, args.images, args.repeats)
    bench_gradcam(bundle, args.repeats, args.threads)
    bench_cache_hit(bundle, args.repeats)
    bench_forms(bundle, args.repeats)
    bench_allocator(args.threads, args.repeats)
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
