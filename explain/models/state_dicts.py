"""State dicts read without unpickling arbitrary objects, and checked against a
torchvision architecture before its weights are loaded.

`torch.load(..., weights_only=True)` or safetensors: a pickle that tries to build
anything but tensors (or run code) is refused with a message saying what it asked for.
A `torch.save` zip is measured before it is read: its members may be deflated, so the
limit applies to the inflated size the zip's directory declares (what torch allocates).
The file is checked against the architecture's names and shapes on the meta device
before any weight is allocated.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from typing import Mapping

import torch
from torch import nn

from .errors import CustomModelError
from .zoo import materialize, zoo_architecture, zoo_model_names

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
# Checkpoints often wrap the weights: {"state_dict": ...}, {"model": ...}.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def read_state_dict(data: bytes, filename: str, max_bytes: int | None = None) -> dict[str, torch.Tensor]:
    """Tensors from a `.safetensors` file or a `torch.save`d state dict, read without
    unpickling arbitrary objects. Common checkpoint wrappers and a DataParallel
    `module.` prefix are removed. `max_bytes` bounds what a `torch.save` zip may inflate to."""
    if not data:
        raise CustomModelError(f"{filename}: the file is empty.")
    if filename.lower().endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load as load_safetensors

        try:
            loaded: object = load_safetensors(data)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise CustomModelError(f"{filename}: not a readable safetensors file ({exc}).") from None
    else:
        loaded = _torch_load_weights_only(data, filename, max_bytes)
    return _tensors_of(loaded, filename)


def _torch_load_weights_only(data: bytes, filename: str, max_bytes: int | None) -> object:
    if is_torchscript_archive(data):
        raise CustomModelError(
            f"{filename}: this is a TorchScript file, not a state dict. Choose 'TorchScript' as the model kind."
        )
    check_inflated_size(data, filename, max_bytes)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found is None:  # not a pickle of anything: garbage or another format
            raise CustomModelError(
                f"{filename}: not a PyTorch state dict that can be read. Expected a file written by "
                f"torch.save(model.state_dict(), path) or safetensors."
            ) from None
        raise CustomModelError(
            f"{filename}: refused. The file asks to build the Python object {found.group(1)}, not only tensors; "
            f"loading it could run code from the file. Save `model.state_dict()` (torch.save or safetensors) "
            f"instead of a whole model or custom objects."
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError) as exc:
        raise CustomModelError(
            f"{filename}: not a PyTorch state dict that can be read ({first_line(exc)}). "
            f"Expected a file written by torch.save(model.state_dict(), path) or safetensors."
        ) from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def zip_members(data: bytes) -> list[zipfile.ZipInfo] | None:
    """The members a zip's central directory lists (nothing is inflated); None for a non-zip."""
    if not data.startswith(b"PK"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.infolist()
    except zipfile.BadZipFile:
        return None


def zip_inflated_size(data: bytes) -> int | None:
    """Sum of the member sizes a zip declares (what a reader allocates to inflate them);
    None for a non-zip."""
    members = zip_members(data)
    return None if members is None else sum(member.file_size for member in members)


def check_inflated_size(data: bytes, filename: str, max_bytes: int | None) -> None:
    """Refuse a zip (`torch.save` or TorchScript) whose members would inflate past
    `max_bytes` (None: no limit); the size limit on the upload itself counts the
    compressed bytes only."""
    inflated = zip_inflated_size(data)
    if max_bytes is not None and inflated is not None and inflated > max_bytes:
        raise CustomModelError(
            f"{filename}: the file inflates to {inflated / 2**20:.0f} MB when read; this instance accepts up to "
            f"{max_bytes / 2**20:.0f} MB."
        )


def is_torchscript_archive(data: bytes) -> bool:
    """TorchScript archives are zips with a `code/` folder; plain torch.save zips have none."""
    members = zip_members(data)
    return members is not None and any("/code/" in member.filename for member in members)


def _tensors_of(loaded: object, filename: str) -> dict[str, torch.Tensor]:
    for _ in range(2):  # unwrap at most two levels of {"state_dict": {...}}
        if isinstance(loaded, Mapping) and not _all_tensors(loaded):
            inner = next((loaded[k] for k in WRAPPER_KEYS if isinstance(loaded.get(k), Mapping)), None)
            if inner is None:
                break
            loaded = inner
    if not isinstance(loaded, Mapping) or not loaded:
        raise CustomModelError(f"{filename}: expected a mapping of parameter names to tensors (a state dict).")
    if not _all_tensors(loaded):
        bad = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)][:5]
        raise CustomModelError(f"{filename}: these entries are not tensors: {', '.join(map(str, bad))}.")
    state = {str(k): v for k, v in loaded.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _all_tensors(mapping: Mapping) -> bool:
    return all(isinstance(v, torch.Tensor) for v in mapping.values())


def fit_report(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """None when `state` fits `model` exactly, else which keys are missing, unexpected
    or of the wrong shape (a few of each, with counts)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} (file {tuple(state[k].shape)}, architecture {tuple(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - 5} more" if len(items) > 5 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:5])}{more}")
    return "; ".join(parts) or None


def build_torchvision_model(
    architecture: str, num_classes: int, state: Mapping[str, torch.Tensor], filename: str = "weights"
) -> nn.Module:
    """The architecture with `num_classes` outputs and the file's weights (strict fit).
    Names and shapes are checked on a meta-device skeleton first, so a small file
    offered for a huge architecture is refused in milliseconds, without building it."""
    if architecture not in zoo_model_names():
        raise CustomModelError(f"Unknown architecture {architecture!r}; choose a torchvision classification model.")
    if num_classes < 1:
        raise CustomModelError("The number of classes must be at least 1.")
    model = zoo_architecture(architecture, num_classes)
    problem = fit_report(model, state)
    if problem:
        hint = _class_count_hint(model, state)
        raise CustomModelError(
            f"{filename} does not fit {architecture} with {num_classes} classes: {problem}.{hint}"
        )
    return materialize(model, state)


def _class_count_hint(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """When only the head's output size differs, say which class count the file has."""
    expected = model.state_dict()
    if set(expected) != set(state):
        return " Is this the right architecture?"
    counts = {
        int(state[k].shape[0]) for k in expected
        if tuple(state[k].shape) != tuple(expected[k].shape) and state[k].dim() >= 1
    }
    if len(counts) == 1:
        return f" The file's classifier has {counts.pop()} outputs: set the number of classes to that."
    return ""
