"""TorchScript models, read only when the operator allows them (a TorchScript file can
run arbitrary operators)."""

from __future__ import annotations

import io
import warnings
import zipfile

import torch
from torch import nn

from .errors import CustomModelError
from .state_dicts import check_inflated_size, first_line, is_torchscript_archive

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".zip")


def load_torchscript(data: bytes, filename: str, *, allowed: bool, max_bytes: int | None = None) -> nn.Module:
    """A TorchScript module (wrapped in `ScriptedClassifier`), only when the operator
    allows TorchScript; `max_bytes` bounds what its zip members may inflate to."""
    if not allowed:
        raise CustomModelError(
            "TorchScript uploads are disabled on this instance: a TorchScript file can run arbitrary "
            "operators. Upload a state dict with its architecture instead, or ask the operator to set "
            "allow_torchscript = true."
        )
    if not is_torchscript_archive(data):
        raise CustomModelError(
            f"{filename}: not a TorchScript file (expected the output of torch.jit.save). "
            f"For a state dict, choose 'State dict + architecture'."
        )
    check_inflated_size(data, filename, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ScriptedClassifier(torch.jit.load(io.BytesIO(data), map_location="cpu"))
    except (RuntimeError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise CustomModelError(f"{filename}: the TorchScript file could not be loaded ({first_line(exc)}).") from None


class ScriptedClassifier(nn.Module):
    """A TorchScript module seen as a plain `nn.Module` (ScriptModules refuse
    `requires_grad_` and `get_submodule`); a tuple output is reduced to its first item."""

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.scripted(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def scripted_conv_layer_names(model: nn.Module) -> list[str]:
    """Conv2d layers of a plain or TorchScript module (scripted children keep their
    original class name)."""
    return [
        name for name, m in model.named_modules()
        if name and (isinstance(m, nn.Conv2d) or getattr(m, "original_name", "") == "Conv2d")
    ]
