"""torchvision: a zoo name with its ImageNet weights (from torch's cache, downloaded only
where allowed), the offline default `efficientnet_lite0`, or a torchvision architecture
with a state-dict file of your own (read weights-only, checked against the architecture)."""

from __future__ import annotations

from dataclasses import dataclass

from ..bundle import ModelBundle
from ..preprocessing import preprocessing_for
from ..state_dicts import build_torchvision_model, read_state_dict
from ..zoo import load_named, zoo_cam_layers
from .registry import LoadRequest, WeightsNeed, finish_bundle


@dataclass(frozen=True)
class TorchvisionSource:
    name: str = "torchvision"
    label: str = "torchvision"
    reference: str = "efficientnet_lite0 or a torchvision classification model name (resnet18, vit_b_16, ...)"
    weights: WeightsNeed = "optional"
    description: str = (
        "torchvision's zoo with its ImageNet weights, or the architecture with your own state dict "
        "(.pt/.pth/.safetensors, read weights-only)."
    )

    def load(self, ref: str, request: LoadRequest) -> ModelBundle:
        if request.weights is None:
            return load_named(ref, request.device, allow_downloads=request.allow_downloads)
        names = request.class_names
        num_classes = request.num_classes or (len(names) if names else 1000)
        state = read_state_dict(request.weights.data, request.weights.name, request.max_bytes)
        model = build_torchvision_model(ref, num_classes, state, request.weights.name)
        digest = request.weights.sha256
        return finish_bundle(
            f"{ref} ({request.weights.name})",
            model,
            request,
            preprocessing_for(ref),
            zoo_cam_layers(ref, model),
            weights=f"uploaded state dict {request.weights.name} (sha256 {digest[:12]})",
            weights_sha256=digest,
            source=self.name,
        )
