"""How many images a metric sends through the model at once.

On a GPU, the bundle's batch size. On the CPU, by measurement: the bundle's batch size
(8 for the default model, `models.bundle.default_batch_size`), but never more than
`CPU_INPUT_VALUES` input values per pass, so small images go through in large batches
and large ones do not outgrow the caches. Measured on this project's 2-core machine
(`bench/bench_evaluation.py --batches`, `bench/bench_batch_sizes.py` print the tables):
with the allocator fix (`explain.allocator`), EfficientNet-Lite0 (150,528 values per
image) costs within ~5 % per image from 2 to 32 images per pass on an idle core and
1.3x at 16 against 4-8 on a shared one (before the fix: 24-27 ms at 2-4 images, 34 at
8, 47 at 16); the small CNN (1 x 28 x 28 = 784 values, bundle batch 256) costs 4.0 ms
per image at 16, 1.2 at 128 and 0.7-0.8 from 256 to 1,024.
"""

from __future__ import annotations

import torch

from ..models.bundle import ModelBundle

CPU_INPUT_VALUES = 2**21  # ~2.1M values: 13 images of 3 x 224 x 224 (the bundle's 8 rule), 512 of 1 x 28 x 28
CPU_MAX_BATCH = 512


def forward_batch_size(bundle: ModelBundle, image_shape: torch.Size | tuple[int, ...]) -> int:
    """Images per forward pass for images of `image_shape` (C, H, W) on `bundle`'s device."""
    if bundle.device.type != "cpu":
        return bundle.batch_size
    values = 1
    for size in image_shape:
        values *= int(size)
    return max(1, min(bundle.batch_size, CPU_MAX_BATCH, CPU_INPUT_VALUES // max(1, values)))
