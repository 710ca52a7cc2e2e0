"""Benchmark of efficient and smooth MPRT (`explain.metrics.mprt_revisited`) against
Quantus 0.6.0's `EfficientMPRT` and `SmoothMPRT` on the same inputs.

A seeded CNN (three conv-BN-ReLU blocks, 10 classes; device batch 256, as the product's
small CNN) on `--images` random images of `--side` px, Saliency maps. Both sides get the
same work: Quantus is handed our randomised models (the steps of our cascading run; its own generator would randomise
every layer) and our method as its explainer (`explain_func`, and `quantus.explain`,
which SmoothMPRT calls), at the batch size Quantus allows (all the images in one batch):
what differs is only how each side batches its model passes and the work around them.
Columns: CPU ms per image of ours and of Quantus, their ratio (target: at most 0.5x),
and ours against the bare model passes the metric needs (the same number of forward
and forward + backward passes, in batches of `forward_batch_size`, with nothing else).

Figures are medians of `--repeats` runs, CPU time of this process (`time.process_time`),
measured in one run.

    python bench/bench_catalogue_randomisation.py [--images 16] [--side 32] [--samples 10] [--steps 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explain  # noqa: E402
from explain.methods.registry import MethodSpec  # noqa: E402
from explain.metrics import MetricInput, get_metric  # noqa: E402
from explain.metrics.batching import forward_batch_size  # noqa: E402
from explain.metrics.mprt_revisited import denoised_maps  # noqa: E402
from explain.metrics.randomisation import fully_randomised_bundle, randomised_bundles  # noqa: E402
from timing import median_cpu_seconds as cpu_seconds  # noqa: E402  (bench/ is on the path when run as a script)

METHOD = "saliency"


def seeded_cnn(width: int = 16, classes: int = 10) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        blocks: list[nn.Module] = []
        channels = 3
        for _ in range(3):
            blocks += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        model = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))
    return model.eval()


def explainer(bundle: explain.ModelBundle) -> Callable[..., np.ndarray]:
    """Our method as Quantus's explainer, on whichever model Quantus hands it."""

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        on_model = dataclasses.replace(bundle, model=model, lock=threading.RLock())
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        return explain.attribute(on_model, x, METHOD, np.asarray(targets).tolist())[:, None]

    return explain_func


def bare_passes(bundle: explain.ModelBundle, images: torch.Tensor, targets: torch.Tensor, forward: int,
                backward: int) -> None:
    """`forward` images through the model and `backward` images through it and back, in device batches."""
    size = forward_batch_size(bundle, tuple(images.shape[1:]))
    reps = -(-max(forward, backward, 1) // len(images))
    x, t = images.repeat(reps, 1, 1, 1), targets.repeat(reps)
    with torch.inference_mode():
        for chunk in x[:forward].split(size):
            bundle.model(chunk)
    for chunk, target in zip(x[:backward].split(size), t[:backward].split(size), strict=True):
        chunk = chunk.clone().requires_grad_(True)
        bundle.model(chunk).gather(1, target[:, None]).sum().backward()


def main() -> None:
    import quantus
    from quantus.helpers.model.pytorch_model import PyTorchModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--samples", type=int, default=10, help="sMPRT noisy copies per map")
    parser.add_argument("--steps", type=int, default=4, help="sMPRT randomisation steps")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    n, side, samples, steps = args.images, args.side, args.samples, args.steps
    model = seeded_cnn()
    bundle = explain.make_bundle("bench CNN", model, [f"class {i}" for i in range(10)], input_size=side,
                                 mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), device="cpu", batch_size=256)
    images = torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    targets = bundle.logits(images).argmax(dim=1)
    spec = MethodSpec.of(METHOD)
    maps = explain.attribute(bundle, images, METHOD, targets.tolist())
    data = MetricInput(bundle, images, maps, targets, spec)
    x_batch, y_batch = images.numpy(), targets.numpy()
    seed = 0

    def feed(models: Callable[[], Iterator[tuple[str, nn.Module]]], length: int) -> None:
        PyTorchModel.get_random_layer_generator = lambda self, order="top_down", seed=42: models()  # type: ignore
        PyTorchModel.random_layer_generator_length = property(lambda self: length)  # type: ignore

    def full() -> Iterator[tuple[str, nn.Module]]:
        yield "all", fully_randomised_bundle(bundle, images[:1], seed).model

    def cascade() -> Iterator[tuple[str, nn.Module]]:
        for step, random in randomised_bundles(bundle, images[:1], "cascading", steps, seed):
            yield step.label, random.model

    smooth_params = {"n_samples": samples, "max_steps": steps, "noise": 0.1, "seed": seed}
    n_steps = sum(1 for _ in cascade())
    trained = denoised_maps(bundle, images, targets.tolist(), spec, 0.1, samples, np.random.RandomState(seed))
    quantus.explain = explainer(bundle)
    cases: dict[str, tuple[dict[str, Any], Callable[[], object], Callable[[], None], tuple[int, int]]] = {
        "efficient_mprt": ({"seed": seed}, lambda: feed(full, 1), lambda: quantus.EfficientMPRT(disable_warnings=True)(
            model=model, x_batch=x_batch, y_batch=y_batch, a_batch=maps[:, None], explain_func=explainer(bundle),
            device="cpu", batch_size=n), (2 * n, n)),
        "smooth_mprt": (smooth_params, lambda: feed(cascade, n_steps), lambda: quantus.SmoothMPRT(
            layer_order="top_down", nr_samples=samples, disable_warnings=True)(
            model=model, x_batch=x_batch, y_batch=y_batch, a_batch=trained[:, None], explain_func=explainer(bundle),
            device="cpu", batch_size=n), (0, n * samples * (n_steps + 1))),
    }
    print(f"{n} images of {side} x {side}, seeded 3-block CNN, {METHOD}, one thread; sMPRT {samples} samples x "
          f"{n_steps} steps; median of {args.repeats} runs, CPU ms per image")
    print(f"{'metric':<16} {'ours':>9} {'Quantus':>9} {'ratio':>7} {'bare passes':>12} {'ours/bare':>10}")
    for key, (params, prepare, reference, (forward, backward)) in cases.items():
        metric = get_metric(key)
        resolved = metric.resolve_params(params)
        ours = cpu_seconds(lambda metric=metric, resolved=resolved: metric.compute(data, resolved),  # type: ignore
                           args.repeats)
        prepare()

        def theirs(reference: Callable[[], object] = reference) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference()

        quantus_seconds = cpu_seconds(theirs, args.repeats)
        bare = cpu_seconds(lambda forward=forward, backward=backward: bare_passes(bundle, images, targets, forward,
                                                                                  backward), args.repeats)
        print(f"{key:<16} {ours / n * 1e3:>9.2f} {quantus_seconds / n * 1e3:>9.2f} {ours / quantus_seconds:>6.2f}x "
              f"{bare / n * 1e3:>12.2f} {ours / bare:>9.2f}x")


if __name__ == "__main__":
    main()
