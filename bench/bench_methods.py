"""Seconds per image for every attribution method at its default settings on the
default model, and the ratio to the bare forward+backward passes the method needs.

    .venv/bin/python bench/bench_methods.py [--images 4] [--repeats 3] [--methods lrp,xrai] [--arch vit_b_16]

The baseline is measured in the same run: `evals_per_image` forward+backward passes
per image (e.g. n_steps for Integrated Gradients, n_samples for SmoothGrad) at the
bundle's batch size. Medians over repeats. `--arch` times a torchvision architecture
instead (random weights: timings do not depend on their values), e.g. vit_b_16 for the
transformer methods (attention rollout, CAMs on tokens).
"""

from __future__ import annotations

import argparse
from functools import partial
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_cpu_seconds, median_seconds  # noqa: E402
import explain  # noqa: E402

SAMPLES = ["chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower", "hubble"]


def forward_backward(bundle: explain.ModelBundle, rows: int) -> None:
    """`rows` bare forward+backward passes (input gradients) in batches of bundle.batch_size."""
    with bundle.lock:
        for start in range(0, rows, bundle.batch_size):
            n = min(bundle.batch_size, rows - start)
            x = torch.zeros(n, 3, bundle.input_size, bundle.input_size, device=bundle.device, requires_grad=True)
            bundle.model(x)[:, 0].sum().backward()


def random_weights_bundle(arch: str) -> explain.ModelBundle:
    """A torchvision architecture with random weights, its preset preprocessing and CAM layers."""
    import torchvision

    from explain.models import zoo_cam_layers, zoo_preprocessing

    model = torchvision.models.get_model(arch, weights=None)
    cam = zoo_cam_layers(arch, model)
    return explain.make_bundle(
        f"{arch} (random weights)", model, explain.models.imagenet_class_names(), **zoo_preprocessing(arch),
        cam_layer=cam.layer, linear_head=cam.head, cam_reshape=cam.reshape,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="", help="comma-separated keys (default: all)")
    parser.add_argument(
        "--arch", default="", help="torchvision architecture with random weights (default: the offline default model)"
    )
    parser.add_argument(
        "--cpu-time", action="store_true", help="time CPU seconds of this process (robust on a shared machine)"
    )
    args = parser.parse_args()
    median = median_cpu_seconds if args.cpu_time else median_seconds

    bundle = random_weights_bundle(args.arch) if args.arch else explain.load_model()
    images = [explain.load_sample(SAMPLES[i % len(SAMPLES)]) for i in range(args.images)]
    x = bundle.preprocess_batch(images)
    n = x.shape[0]
    print(
        f"model {bundle.name} on {bundle.device} ({torch.get_num_threads()} threads), batch size {bundle.batch_size}, "
        f"{n} images, median of {args.repeats}{' (CPU time)' if args.cpu_time else ''}"
    )
    per_pass = median(lambda: forward_backward(bundle, bundle.batch_size * 2), args.repeats) / (bundle.batch_size * 2)
    print(f"bare forward+backward: {per_pass * 1000:.1f} ms per image\n")
    print(f"{'method':24s} {'s/image':>9s} {'passes':>7s} {'bare s':>8s} {'ratio':>6s}")
    wanted = [k for k in args.methods.split(",") if k] or [m.key for m in explain.list_methods()]
    for key in wanted:
        method = explain.get_method(key)
        if not method.is_available(bundle):
            continue
        explain.attribute(bundle, x[:1], key)  # warm-up
        seconds = median(partial(explain.attribute, bundle, x, key), args.repeats) / n
        passes = method.evals_per_image(method.resolve_params({}), bundle.input_size)
        bare = median(partial(forward_backward, bundle, passes * n), args.repeats) / n
        print(f"{key:24s} {seconds:9.3f} {passes:7d} {bare:8.3f} {seconds / bare:6.2f}")


if __name__ == "__main__":
    main()
