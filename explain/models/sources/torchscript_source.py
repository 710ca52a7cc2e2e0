"""TorchScript files (only where the operator allows them: they can run arbitrary
operators). Hooks do not run inside compiled code, so no CAM layer."""

from __future__ import annotations

from dataclasses import dataclass

from ..architectures import CamLayers
from ..bundle import ModelBundle
from ..preprocessing import Preprocessing
from ..torchscript import load_torchscript
from .registry import LoadRequest, WeightsFile, WeightsNeed, finish_bundle


@dataclass(frozen=True)
class TorchScriptSource:
    name: str = "torchscript"
    label: str = "TorchScript"
    reference: str = "a TorchScript file (torch.jit.save)"
    weights: WeightsNeed = "none"
    description: str = "A compiled TorchScript model; gradient and perturbation methods work, CAM methods do not."

    def load(self, ref: str, request: LoadRequest) -> ModelBundle:
        file = WeightsFile.read(ref, request.max_bytes)
        return load_torchscript_file(file, request)


def load_torchscript_file(file: WeightsFile, request: LoadRequest) -> ModelBundle:
    """A TorchScript file already read (an upload, or the bytes a remote worker received)."""
    model = load_torchscript(file.data, file.name, allowed=request.allow_torchscript, max_bytes=request.max_bytes)
    digest = file.sha256
    return finish_bundle(
        f"TorchScript ({file.name})",
        model,
        request,
        Preprocessing(),
        CamLayers(None, None),
        weights=f"uploaded torchscript {file.name} (sha256 {digest[:12]})",
        weights_sha256=digest,
        source="torchscript",
    )
