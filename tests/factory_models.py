"""An operator's own architecture, as `--factory tests.factory_models:build` names it: a
small RGB CNN (global average pooling + one linear layer, so CAM applies) whose module
also says how its images are preprocessed and what its classes are called."""

from __future__ import annotations

import torch
from torch import nn

PREPROCESSING = {"input_size": 16, "resize_size": 16, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
CLASS_NAMES = ["red", "green", "blue"]
CAM_LAYERS = ("features", "fc")  # the feature maps global average pooling reads, and the one linear layer after it


class ColourNet(nn.Module):
    def __init__(self, num_classes: int = 3, width: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def build(num_classes: int = 3) -> nn.Module:
    return ColourNet(num_classes)


def broken() -> nn.Module:
    raise RuntimeError("no GPU here\nsecond line")
