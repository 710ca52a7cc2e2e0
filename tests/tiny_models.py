"""Tiny timm and Hugging Face models made offline, for the model-source tests and pages."""

from __future__ import annotations

from pathlib import Path

import torch

CLASSES = 3
LABELS = {0: "cat", 1: "dog", 2: "fox"}


def save_safetensors(model: torch.nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def save_tiny_models(root: Path) -> dict[str, Path]:
    """Tiny timm and Hugging Face classifiers with seeded random weights, each saved the way
    its library saves it (safetensors; HF folders with their image processor)."""
    import timm
    from transformers import (
        ConvNextConfig,
        ConvNextForImageClassification,
        ConvNextImageProcessor,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    paths = {
        "timm_convnext": save_safetensors(
            timm.create_model("test_convnext", pretrained=False, num_classes=CLASSES), root / "convnext.safetensors"
        ),
        "timm_vit": save_safetensors(
            timm.create_model("test_vit", pretrained=False, num_classes=CLASSES), root / "vit.safetensors"
        ),
    }
    vit = ViTForImageClassification(
        ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=CLASSES,
            id2label=LABELS,
            label2id={v: k for k, v in LABELS.items()},
        )
    )
    vit.save_pretrained(root / "hf_vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "hf_vit")
    convnext = ConvNextForImageClassification(
        ConvNextConfig(
            hidden_sizes=[8, 16],
            depths=[1, 1],
            num_stages=2,
            num_labels=CLASSES,
            id2label=LABELS,
            label2id={v: k for k, v in LABELS.items()},
        )
    )
    convnext.save_pretrained(root / "hf_convnext")
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875).save_pretrained(root / "hf_convnext")
    paths["hf_vit"], paths["hf_convnext"] = root / "hf_vit", root / "hf_convnext"
    return paths
