"""Benchmark of Faithfulness II (region perturbation, selectivity, sufficiency,
sensitivity-N) against Quantus 0.6.0 on the same model, images and maps.

For each family: CPU ms per image of `get_metric(key).compute` (the registry's path)
against Quantus's metric on the same inputs, at the batch size Quantus allows (the whole
batch, at most its default 64), as the ratio ours / Quantus (target: at most 0.5x); and
against the bare model passes the family needs (`passes(params, n)` inputs through
`bundle.model` in the same forward-sized chunks, nothing else), as ours / bare.
Region perturbation computes MoRF and LeRF in one run; Quantus needs one call per
order (both timed). Quantus's SensitivityN is another quantity under that name (see
`explain/metrics/sensitivity_n.py`): it is timed at `features_in_step` giving about
the same number of model passes per image.

Models: `small` (default), the product's SmallCNN with seeded random weights on MNIST
(1 x 28 x 28, patches of 4 px: grid 7), where Quantus's own overhead shows; `default`,
the default model (EfficientNet-Lite0, 3 x 224 x 224, grid 16 / 8), where the passes
dominate. Medians of `--repeats` runs, CPU time of this process, measured in one run.

    python bench/bench_catalogue_faithfulness_regions.py [--model small|default] [--images 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explain  # noqa: E402
from explain.methods.registry import MethodSpec  # noqa: E402
from explain.metrics import MetricInput, get_metric  # noqa: E402
from explain.metrics.batching import forward_batch_size  # noqa: E402
from timing import median_cpu_seconds as cpu_seconds  # noqa: E402  (bench/ is on the path when run as a script)


def small_setup(n: int) -> tuple[explain.ModelBundle, torch.Tensor, dict[str, int]]:
    from explain.data.training import mnist_arrays
    from explain.models.small_cnn import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN().eval()
    bundle = explain.make_bundle("small_cnn (seeded random weights)", model, [str(d) for d in range(10)],
                                 input_size=28, resize_size=28, mean=(0.1307,), std=(0.3081,), device="cpu",
                                 batch_size=256)
    pixels = torch.tensor(mnist_arrays()[0][:n].astype(np.float32) / 255.0)[:, None]
    return bundle, (pixels - 0.1307) / 0.3081, {"region_grid": 7, "selectivity_grid": 7, "quantus_features": 8}


def default_setup(n: int) -> tuple[explain.ModelBundle, torch.Tensor, dict[str, int]]:
    bundle = explain.load_model(explain.DEFAULT_MODEL, device="cpu")
    images = torch.randn(n, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return bundle, images, {"region_grid": 16, "selectivity_grid": 8, "quantus_features": 1568}


def bare_passes(bundle: explain.ModelBundle, images: torch.Tensor, passes: int) -> Callable[[], None]:
    """`passes` inputs through the model in the metric's chunks, nothing else."""
    chunk = forward_batch_size(bundle, tuple(images.shape[1:]))
    batch = images.repeat(-(-chunk // len(images)), 1, 1, 1)[:chunk].contiguous()  # the images themselves, tiled

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, passes, chunk):
                bundle.model(batch[: min(chunk, passes - start)])

    return run


def main() -> None:
    import quantus

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("small", "default"), default="small")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    n = min(args.images, 64)
    bundle, images, sizes = (small_setup if args.model == "small" else default_setup)(n)
    side = int(images.shape[-1])
    maps = np.random.default_rng(1).normal(size=(n, side, side))
    targets = torch.zeros(n, dtype=torch.long)
    data = MetricInput(bundle, images, maps, targets, MethodSpec.of("saliency"))
    model, x_batch, y_batch, a_batch = bundle.model, images.numpy(), targets.numpy(), maps[:, None]
    quiet: dict[str, Any] = {"disable_warnings": True}
    region_patch, selectivity_patch = side // sizes["region_grid"], side // sizes["selectivity_grid"]
    cases: list[tuple[str, dict[str, Any], list[Any]]] = [
        ("region_perturbation", {"grid": sizes["region_grid"], "regions": 32},
         [quantus.RegionPerturbation(patch_size=region_patch, order=order, regions_evaluation=32, **quiet)
          for order in ("morf", "lerf")]),
        ("selectivity", {"grid": sizes["selectivity_grid"]},
         [quantus.Selectivity(patch_size=selectivity_patch, **quiet)]),
        ("sufficiency", {}, [quantus.Sufficiency(**quiet)]),
        ("sensitivity_n", {}, [quantus.SensitivityN(features_in_step=sizes["quantus_features"], **quiet)]),
    ]
    print(f"{bundle.name}: {n} images of {tuple(images.shape[1:])}, Quantus batch {n}, {args.threads} thread(s), "
          f"median of {args.repeats} runs, CPU ms per image")
    print(f"{'metric':<20} {'passes':>7} {'ours':>9} {'Quantus':>9} {'ratio':>7} {'bare':>9} {'ours/bare':>9}")
    for key, params, references in cases:
        metric = get_metric(key)
        resolved = metric.resolve_params(params)
        passes = metric.passes(resolved, n)

        def ours(metric: Any = metric, resolved: dict = resolved) -> None:
            metric.compute(data, resolved)

        def theirs(references: list[Any] = references) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for reference in references:
                    reference(model=model, x_batch=x_batch, y_batch=y_batch, a_batch=a_batch.copy(), device="cpu",
                              batch_size=n)

        mine, quantus_seconds = cpu_seconds(ours, args.repeats), cpu_seconds(theirs, args.repeats)
        bare = cpu_seconds(bare_passes(bundle, images, passes), args.repeats)
        print(f"{key:<20} {passes / n:>7.0f} {mine / n * 1e3:>9.2f} {quantus_seconds / n * 1e3:>9.2f} "
              f"{mine / quantus_seconds:>6.2f}x {bare / n * 1e3:>9.2f} {mine / bare:>8.2f}x")


if __name__ == "__main__":
    main()
