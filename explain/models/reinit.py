"""Fresh parameters for a module, drawn from a generator of the caller's: PyTorch's
default initialisation without touching the global random generator (other threads
draw from it), so that the same seed always gives the same weights.

Used to build the small CNN before training and to randomise layers of a copy of a
trained model (the sanity checks). The rules are PyTorch's own defaults, read off the
parameters so they hold for any module type:

- parameters of two or more dimensions (Conv/Linear weights, and tokens or embeddings):
  Kaiming-uniform with a = sqrt(5), as `nn.Linear`/`nn.Conv2d.reset_parameters`;
- a `bias` beside such a `weight`: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as those do;
- one-dimensional `weight`s (normalisation scales): ones, their `bias`: zeros, and the
  running statistics reset (mean 0, variance 1), as `reset_parameters` of BatchNorm,
  LayerNorm and GroupNorm;
- any other one-dimensional parameter: zeros.
"""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def reinitialise(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw `module`'s own parameters (not its children's) in place, in the order
    they are declared; see the module docstring for the rules."""
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight")
    fan_in = nn.init._calculate_fan_in_and_fan_out(weight)[0] if weight is not None and weight.dim() >= 2 else 0
    for name, param in params.items():
        if param.dim() >= 2:
            nn.init.kaiming_uniform_(param, a=math.sqrt(5), generator=generator)
        elif name == "bias" and fan_in > 0:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(param, -bound, bound, generator=generator)
        elif name == "weight":
            param.fill_(1.0)
        else:
            param.zero_()
    reset_running_stats = getattr(module, "reset_running_stats", None)
    if callable(reset_running_stats) and getattr(module, "track_running_stats", False):
        reset_running_stats()
