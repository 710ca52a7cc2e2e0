"""Weights checked against an architecture before they are loaded: one message for a file
that does not fit, whichever source built the architecture."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from torch import nn

from ..errors import CustomModelError
from ..state_dicts import fit_report
from ..zoo import materialize


def load_fitting(model: nn.Module, state: Mapping[str, torch.Tensor], filename: str, architecture: str) -> nn.Module:
    """`model` (a meta skeleton or a built module) with the file's weights, after a strict
    check of names and shapes; a file of another architecture gets one clear message."""
    problem = fit_report(model, state)
    if problem:
        raise CustomModelError(f"{filename} does not fit {architecture}: {problem}. Is this the right architecture?")
    if any(p.is_meta for p in model.parameters()):
        return materialize(model, state)
    model.load_state_dict(state, strict=True)
    return model


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of every tensor's name, shape and bytes (weights that came without one file)."""
    h = hashlib.sha256()
    for key, tensor in state.items():
        h.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()
