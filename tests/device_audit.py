"""Catch tensors left on the wrong device without a GPU.

On a GPU, a tensor made without `device=` lands on the CPU (the default device) while the
model, its inputs and everything computed from them live on the GPU; an operation that
mixes the two fails there, and only there. `DeviceAudit` finds those operations on a CPU
machine: it follows, through every torch operation, which tensors come from the model's
side (the inputs and weights it is given, and what is computed from them, or moved with an
explicit device) and which were made on the default device (factories without `device=`,
`torch.from_numpy`), and records every operation that mixes the two where CUDA would
refuse it (a 0-dim tensor is allowed, as is indexing with a host index, as PyTorch does).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

DEVICE, HOST = "device", "host"
FACTORIES = {
    torch.zeros, torch.ones, torch.empty, torch.full, torch.rand, torch.randn, torch.randint, torch.arange,
    torch.linspace, torch.logspace, torch.tensor, torch.as_tensor, torch.eye, torch.randperm, torch.from_numpy,
}
MOVES = {torch.Tensor.to, torch.Tensor.cuda}
TO_HOST = {torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist, torch.Tensor.item}
HOST_INDEX_ALLOWED = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}


class DeviceAudit(TorchFunctionMode):
    """Within the block, `mixes` lists (operation, where) for every mix of model-side and
    default-device tensors (see the module docstring)."""

    def __init__(self, device_side: Iterable[torch.Tensor]) -> None:
        super().__init__()
        self.tags = WeakTensorKeyDictionary()
        for tensor in device_side:
            self.tags[tensor] = DEVICE
        self.mixes: list[tuple[str, str]] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func in TO_HOST:  # host data on purpose (on a GPU `.cpu()` copies; here it may return the tensor itself)
            if isinstance(result, torch.Tensor):
                self.tags.pop(result, None)
            return result
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        tags = {self.tags.get(t) for t in inputs}
        if func in FACTORIES:
            tag = None if kwargs.get("device") is not None or (func is torch.as_tensor and inputs) else HOST
        elif func in MOVES:
            explicit = func is torch.Tensor.cuda or any(isinstance(a, (torch.device, str, torch.Tensor))
                                                        for a in [*args[1:], kwargs.get("device")])
            tag = DEVICE if explicit else (DEVICE if DEVICE in tags else None)
        else:
            if DEVICE in tags and HOST in tags and func not in HOST_INDEX_ALLOWED:
                hosts = [t for t in inputs if self.tags.get(t) == HOST and t.dim() > 0]
                if hosts:
                    where = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[:-1]
                             if "site-packages/torch" not in f.filename][-3:]
                    self.mixes.append((getattr(func, "__name__", str(func)), " <- ".join(reversed(where))))
            tag = DEVICE if DEVICE in tags else (HOST if HOST in tags else None)
        if tag is not None:
            for out in tree_flatten(result)[0]:
                if isinstance(out, torch.Tensor):
                    self.tags[out] = tag
        return result
