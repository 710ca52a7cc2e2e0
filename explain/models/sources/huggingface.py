"""Hugging Face: a local folder (or, where downloads are allowed, a hub id) holding an
`AutoModelForImageClassification` checkpoint: `config.json`, `model.safetensors` and the
image processor's `preprocessor_config.json`. Safetensors only (a pickle
`pytorch_model.bin` is refused, never unpickled) and never `trust_remote_code`: a config
that asks for remote code (`auto_map`) is refused. Class names from `id2label`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..architectures import architecture_cam_layers, last_convolution
from ..bundle import ModelBundle
from ..digests import sha256_files
from ..errors import CustomModelError, ModelUnavailableError
from ..preprocessing import Preprocessing
from ..state_dicts import first_line
from .registry import LoadRequest, WeightsNeed, finish_bundle

HUB_FILES = ["config.json", "preprocessor_config.json", "*.safetensors", "model.safetensors.index.json"]


class HuggingFaceClassifier(nn.Module):
    """An `AutoModelForImageClassification` model seen as images -> logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def check_folder(folder: Path) -> list[Path]:
    """The folder's weight files, after the checks that keep code from running: a config
    without `auto_map`, safetensors weights (a pickle-only checkpoint is refused)."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CustomModelError(f"{folder}: no config.json; expected a Hugging Face model folder (save_pretrained).")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CustomModelError(f"{folder}/config.json is not valid JSON ({first_line(exc)}).") from None
    if not isinstance(config, dict):
        raise CustomModelError(f"{folder}/config.json is not a JSON object.")
    if "auto_map" in config:
        raise CustomModelError(
            f"{folder.name}: the config asks for custom code (auto_map), which is never run here; "
            f"use a model whose architecture is built into transformers."
        )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt*"))
        found = f"only {', '.join(pickles)} (pickle, never unpickled here)" if pickles else "no weights"
        raise CustomModelError(
            f"{folder.name}: {found}; save the model with safetensors "
            f"(model.save_pretrained(folder, safe_serialization=True))."
        )
    return weights


def _entry(sizes: object, key: str) -> int | None:
    """A field of an image processor's size (a dict, or transformers' `SizeDict`)."""
    if sizes is None:
        return None
    value = sizes.get(key) if isinstance(sizes, dict) else getattr(sizes, key, None)
    return int(value) if value else None


def hf_preprocessing(processor: object) -> Preprocessing:
    """The image processor's size, crop and normalisation as resize + center crop: a fixed
    {height, width} (ViT) is resized to directly; {shortest_edge} with `crop_pct` (ConvNeXt)
    resizes to edge / crop_pct and crops the edge."""
    size, crop = getattr(processor, "size", None), getattr(processor, "crop_size", None)
    cropped, shortest = _entry(crop, "height"), _entry(size, "shortest_edge")
    if getattr(processor, "do_center_crop", False) and cropped:
        input_size, resize = cropped, shortest or _entry(size, "height") or cropped
    elif shortest:
        crop_pct = getattr(processor, "crop_pct", None)
        input_size, resize = shortest, int(shortest / crop_pct) if crop_pct and shortest < 384 else shortest
    else:
        input_size = resize = _entry(size, "height") or 224
    mean = tuple(getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5))
    std = tuple(getattr(processor, "image_std", None) or (0.5, 0.5, 0.5))
    return Preprocessing(input_size, max(resize, input_size), mean, std)


def _hub_folder(ref: str, allow_downloads: bool) -> Path:
    if not allow_downloads:
        raise ModelUnavailableError(
            f"{ref!r} is not a model folder here, and downloads are off "
            f"(--allow-downloads; allow_downloads = true on a server)."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, allow_patterns=HUB_FILES))
    except Exception as exc:  # the hub client raises many kinds (network, 404, gated): one message
        raise ModelUnavailableError(f"Could not fetch {ref!r} from the Hugging Face hub ({first_line(exc)}).") from None


@dataclass(frozen=True)
class HuggingFaceSource:
    name: str = "hf"
    label: str = "Hugging Face"
    reference: str = "a folder saved with save_pretrained (config.json + model.safetensors), or a hub id"
    weights: WeightsNeed = "none"
    description: str = (
        "An AutoModelForImageClassification checkpoint with its image processor: safetensors only, "
        "never remote code; class names from id2label."
    )

    def load(self, ref: str, request: LoadRequest) -> ModelBundle:
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

        folder = Path(ref).expanduser()
        folder = folder if folder.is_dir() else _hub_folder(ref, request.allow_downloads)
        weight_files = check_folder(folder)
        total = sum(p.stat().st_size for p in weight_files)
        if total > request.max_bytes:
            raise CustomModelError(
                f"{folder.name}: the weights are {total / 2**20:.0f} MB; "
                f"the limit is {request.max_bytes / 2**20:.0f} MB."
            )
        try:
            config = AutoConfig.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
            hf_model = AutoModelForImageClassification.from_pretrained(
                folder, config=config, use_safetensors=True, trust_remote_code=False, local_files_only=True
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise CustomModelError(
                f"{folder.name}: transformers cannot load this folder as an image classifier ({first_line(exc)})."
            ) from None
        try:
            processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise CustomModelError(
                f"{folder.name}: no usable preprocessor_config.json ({first_line(exc)}); save the "
                f"image processor with save_pretrained too."
            ) from None
        model = HuggingFaceClassifier(hf_model).eval()
        cam = architecture_cam_layers(hf_model, prefix="model.") or last_convolution(model)
        id2label = getattr(config, "id2label", None) or {}
        names = [str(id2label[i]) for i in sorted(id2label)] if id2label else None
        digest = sha256_files(weight_files)
        return finish_bundle(
            f"hf:{folder.name}",
            model,
            request,
            hf_preprocessing(processor),
            cam,
            weights=f"Hugging Face {config.model_type} {folder.name} (sha256 {digest[:12]})",
            weights_sha256=digest,
            source=self.name,
            model_names=names,
        )
