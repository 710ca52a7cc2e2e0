"""How many images a metric sends through the model at once.

On a GPU, the bundle's batch size. On the CPU, by measurement: the time per image of a
forward pass grows once a batch's activations outgrow the caches, so a batch holds
about `CPU_INPUT_VALUES` input values whatever the image size (and never more images
than the bundle's batch size, which a caller may lower). Measured on this
project's 2-core machine (`bench/bench_evaluation.py --batches` prints the table):
EfficientNet-Lite0 (3 x 224 x 224 = 150,528 values per image) costs about 24-27 ms
per image at 2-4 images per pass, 34 ms at 8 and 47 ms at 16; the small CNN (1 x 28 x
28 = 784 values) costs 4.0 ms per image at 16, 1.2 at 128 and 0.7-0.8 from 256 to
1,024. Both optima sit near half a million input values per batch.
"""

from __future__ import annotations

import torch

from ..models.bundle import ModelBundle

CPU_INPUT_VALUES = 2**19  # ~524k values: 3 images of 3 x 224 x 224, 512 of 1 x 28 x 28
CPU_MAX_BATCH = 512


def forward_batch_size(bundle: ModelBundle, image_shape: torch.Size | tuple[int, ...]) -> int:
    """Images per forward pass for images of `image_shape` (C, H, W) on `bundle`'s device."""
    if bundle.device.type != "cpu":
        return bundle.batch_size
    values = 1
    for size in image_shape:
        values *= int(size)
    return max(1, min(bundle.batch_size, CPU_MAX_BATCH, CPU_INPUT_VALUES // max(1, values)))
