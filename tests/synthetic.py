"""Small models with closed-form answers, shared by the tests."""

from __future__ import annotations

import torch
from torch import nn

import explain


class LinearClassifier(nn.Module):
    """logits = W . flatten(x) + b."""

    def __init__(self, shape: tuple[int, int, int] = (3, 8, 8), classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        features = shape[0] * shape[1] * shape[2]
        self.fc = nn.Linear(features, classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(classes, features, generator=g))
            self.fc.bias.copy_(torch.randn(classes, generator=g))
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class SquareModel(nn.Module):
    """Class 0 logit = sum(a * x^2); class 1 logit = 0. Gradient 2 a x."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = (self.a * x.pow(2)).flatten(1).sum(1)
        return torch.stack([f, torch.zeros_like(f)], dim=1)


class PatchCNN(nn.Module):
    """A CNN whose class-1 evidence is red colour: conv -> ReLU -> conv -> ReLU -> GAP -> linear.

    `features` (the second ReLU) is the CAM layer, `fc` the linear head. Class 1 is
    scored by red-minus-other channels, so in an image that is red only inside a
    patch, all class-1 evidence sits in that patch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.features = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv1.weight.zero_()
            self.conv1.bias.zero_()
            self.conv1.weight[0, 0, 1, 1] = 1.0  # red
            self.conv1.weight[0, 1, 1, 1] = -1.0  # minus green
            self.conv1.weight[1, 1, 1, 1] = 1.0  # green
            self.conv1.weight[2, 2, 1, 1] = 1.0  # blue
            self.conv2.weight.zero_()
            self.conv2.bias.zero_()
            for k in range(3):
                self.conv2.weight[k, k] = 1.0 / 9  # local mean per channel
            self.fc.weight.copy_(torch.tensor([[0.0, 1.0, 1.0, 0.0], [4.0, 0.0, 0.0, 0.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(self.conv2(self.relu1(self.conv1(x))))).flatten(1))


def patch_image(size: int = 32, patch: tuple[int, int, int, int] = (4, 12, 18, 26), seed: int = 0) -> torch.Tensor:
    """Grey-green noise with a red square at rows patch[0]:patch[1], cols patch[2]:patch[3]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, size, size, generator=g) * 0.3
    x[:, 1] += 0.3
    r0, r1, c0, c1 = patch
    x[:, 0, r0:r1, c0:c1] = 1.0
    x[:, 1, r0:r1, c0:c1] = 0.0
    return x


def bundle_of(model: nn.Module, size: int, classes: int, **kwargs) -> explain.ModelBundle:
    return explain.make_bundle(
        type(model).__name__, model, [f"class {i}" for i in range(classes)], input_size=size,
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), device="cpu", **kwargs,
    )


def labelled_folder(root, per_class: int = 12, size: int = 16):
    """Two classes of `size` x `size` PNGs (folders dark/, bright/) told apart by a dark or
    bright top-left patch, and one broken file: a tiny dataset for ROAR pages."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(["dark", "bright"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (120 + 20 * rng.standard_normal((size, size, 3))).clip(0, 255)
            pixels[:4, :4] = 250 if label else 5
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    (root / "dark" / "broken.png").write_bytes(b"not an image")
    return root
