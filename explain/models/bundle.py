"""Model bundles: a classifier in eval mode with its preprocessing, class names and
the layers that CAM methods use. `make_bundle` wraps any `nn.Module`."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2 as T

from .model_lock import ModelLock

@dataclass(frozen=True)
class ModelCard:
    """What a reader needs to know to load the same model again (stored with results)."""

    name: str
    weights: str
    device: str
    model_id: str
    num_classes: int
    num_parameters: int
    source: str = ""
    weights_sha256: str = ""


def tokens_to_grid(tokens: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
    """Transformer tokens (N, prefix + h*w, C) -> feature maps (N, C, h, w): the first
    `prefix_tokens` (class, distillation and register tokens) are dropped, the patch
    tokens laid out on their square grid (row by row, as the patch embedding makes them)."""
    patches = tokens[:, prefix_tokens:]
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patch tokens do not form a square grid")
    return patches.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


def vit_tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """ViT tokens (N, 1 + h*w, C) -> feature maps (N, C, h, w): the class token is dropped."""
    return tokens_to_grid(tokens, 1)


def channels_last_to_first(features: torch.Tensor) -> torch.Tensor:
    """Swin's channels-last feature maps (N, h, w, C) -> (N, C, h, w)."""
    return features.permute(0, 3, 1, 2)


# How a CAM layer's output becomes (N, C, h, w) feature maps, by the name a bundle records.
# "tokens:K" (any K >= 0) drops K prefix tokens: see `cam_reshape_function`.
CAM_RESHAPES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "vit_tokens": vit_tokens_to_grid,
    "channels_last": channels_last_to_first,
}
TOKENS_PREFIX = "tokens:"


def cam_reshape_function(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The reshape a bundle names: a `CAM_RESHAPES` entry, or "tokens:K" for transformers
    with K prefix tokens (DeiT's class + distillation tokens: 2; EVA/ViT with registers: 1 + registers;
    Swin's token sequence: 0)."""
    if name in CAM_RESHAPES:
        return CAM_RESHAPES[name]
    if name.startswith(TOKENS_PREFIX) and name[len(TOKENS_PREFIX):].isdigit():
        prefix = int(name[len(TOKENS_PREFIX):])
        return lambda tokens: tokens_to_grid(tokens, prefix)
    raise ValueError(f"unknown CAM reshape {name!r}; known: {', '.join(CAM_RESHAPES)}, {TOKENS_PREFIX}K")


MAX_ASPECT = 8  # longer images are cut to what the center crop keeps before resizing (see `ModelBundle.crop`)


@dataclass(eq=False)
class ModelBundle:
    """Everything the methods, metrics and pages need to know about one classifier.

    `lock` serialises every use of `model`: methods that attach hooks or override
    backward passes run under it, so two sessions sharing the cached bundle never
    see each other's patches; it is fair (`ModelLock`), so a page's forward pass waits
    for one chunk of a job, not the whole job. `cam_reshape` names the `CAM_RESHAPES` entry that turns
    the CAM layer's output into (N, C, h, w) feature maps (transformers' tokens);
    None when the layer already gives them.

    `rectifier_model`: the same network with its rectifiers as `nn.ReLU` modules, for the
    methods that override the backward pass at rectifiers (`Method.sees_rectifiers`),
    when `model` uses faster operators (the default EfficientNet-Lite0's `nn.ReLU6`).
    It shares every parameter and buffer tensor with `model` (one set of weights, one
    `model_id`); None means `model` serves every method.
    """

    name: str
    model: nn.Module
    class_names: list[str]
    input_size: int
    resize_size: int
    mean: tuple[float, ...]  # one per input channel
    std: tuple[float, ...]  # one per input channel
    cam_layer: str | None
    linear_head: str | None
    device: torch.device
    weights: str
    model_id: str
    batch_size: int
    cam_reshape: str | None = None
    lock: ModelLock = field(default_factory=ModelLock)
    rectifier_model: nn.Module | None = None
    source: str = ""
    weights_sha256: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def card(self) -> ModelCard:
        return ModelCard(self.name, self.weights, str(self.device), self.model_id, self.num_classes,
                         self.num_parameters, self.source, self.weights_sha256)

    def cam_feature_maps(self, output: torch.Tensor) -> torch.Tensor:
        """The CAM layer's output (or its gradient) as (N, C, h, w) feature maps."""
        maps = cam_reshape_function(self.cam_reshape)(output) if self.cam_reshape else output
        if maps.dim() != 4:
            raise ValueError(
                f"the CAM layer {self.cam_layer!r} gives outputs of shape {tuple(output.shape)}, not feature maps (N, "
                "C, h, w)"
            )
        return maps

    def cam_module(self) -> nn.Module:
        """The CAM layer (methods that need one are unavailable without it)."""
        if self.cam_layer is None:
            raise ValueError(f"{self.name} has no CAM layer set")
        return self.model.get_submodule(self.cam_layer)

    def head_module(self) -> nn.Linear:
        """The linear head after the CAM layer's pooling (CAM needs one)."""
        head = None if self.linear_head is None else self.model.get_submodule(self.linear_head)
        if not isinstance(head, nn.Linear):
            raise ValueError(f"{self.name} has no linear head set")
        return head

    def with_rectifiers(self) -> "ModelBundle":
        """This bundle as seen by a method that needs `nn.ReLU` rectifiers: `model` is the
        rectifier form (same weights, same lock and id)."""
        if self.rectifier_model is None:
            return self
        return dataclasses.replace(self, model=self.rectifier_model)

    def crop(self, image: Image.Image) -> Image.Image:
        """Resize and center-crop an RGB image to the model's input size (what the model sees).

        An image more than `MAX_ASPECT` times longer than wide is first cut to the middle
        part that the center crop keeps (plus the resampling filter's reach), so the
        cost stays bounded: resized whole, a 10000 x 1 image would become 2,560,000 x 256."""
        width, height = image.size
        short, long_side = min(width, height), max(width, height)
        if long_side > MAX_ASPECT * short:
            scale = self.resize_size / short
            keep = min(long_side, math.ceil(self.input_size / scale) + 2 * math.ceil(2 / scale) + 2)
            start = (long_side - keep) // 2
            long_short = [round(keep * scale), self.resize_size]  # (long, short) of the kept part, resized
            size: int | list[int] = long_short[::-1] if width >= height else long_short
            if width >= height:
                image = image.crop((start, 0, start + keep, height))
            else:
                image = image.crop((0, start, width, start + keep))
        else:
            size = self.resize_size  # the short side; the long side keeps the aspect ratio
        image = T.functional.resize(image, size, interpolation=T.InterpolationMode.BILINEAR, antialias=True)
        return T.functional.center_crop(image, [self.input_size, self.input_size])

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> normalised float tensor (C, H, W) on the CPU: RGB, or grayscale
        for a model normalised with one mean (e.g. the small CNN on MNIST)."""
        mode = "L" if len(self.mean) == 1 else "RGB"
        x = T.functional.pil_to_tensor(self.crop(image.convert(mode))).float() / 255.0
        return T.functional.normalize(x, list(self.mean), list(self.std))

    def preprocess_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preprocess(im) for im in images])

    def to_display(self, batch: torch.Tensor) -> np.ndarray:
        """Normalised batch (N, C, H, W) -> uint8 RGB images (N, H, W, 3) for overlays."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        x = (batch.detach().cpu().float() * std + mean).clamp(0, 1)
        return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits for a normalised batch, evaluated in device-sized chunks, returned on the CPU."""
        out = []
        with self.lock:
            for chunk in batch.split(self.batch_size):
                out.append(self.model(chunk.to(self.device)).float().cpu())
        return torch.cat(out)

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        return self.logits(batch).softmax(dim=1)

    def top_k(self, batch: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Top-k (class index, class name, probability) per image."""
        probs = self.probabilities(batch)
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        return [
            [(int(i), self.class_names[int(i)], float(v)) for v, i in zip(vs, ids, strict=True)]
            for vs, ids in zip(values, indices, strict=True)
        ]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_batch_size(device: torch.device) -> int:
    """Images (or noisy copies) per forward/backward pass: large on a GPU; 8 on the CPU,
    by measurement (`bench/bench_batch_sizes.py`, `bench/bench_speed.py`): with the
    allocator fix, per-image cost is flat within ~5 % from 2 to 32 images per pass on an
    idle core, but on a shared one 16-image deletion passes cost 1.3x those of 4 or 8
    (their activations no longer fit the cache), and 8 halves the peak memory of 16."""
    return 128 if device.type == "cuda" else 8


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of the modules that contain a Conv2d, leaves first: the candidate CAM layers."""
    return [name for name, m in model.named_modules() if name and isinstance(m, nn.Conv2d)]


def state_dict_digest(model: nn.Module) -> str:
    """A short digest of all the weights: part of every cache key, so that two models of
    the same name (or two checkpoints differing anywhere, even in their last byte) never
    share cached attributions or predictions. Hashes every tensor's name, dtype, shape
    and full bytes, streamed through BLAKE2b from memoryviews (no copy of CPU tensors)."""
    h = hashlib.blake2b(digest_size=16)
    for key, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{key}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(memoryview(flat.view(torch.uint8).numpy()))
    return h.hexdigest()[:16]


def share_tensors(source: nn.Module, target: nn.Module) -> nn.Module:
    """Make `target` (another form of the same network: same state-dict names) use
    `source`'s parameter and buffer tensors, so both forms hold one set of weights."""
    params, buffers = dict(source.named_parameters()), dict(source.named_buffers())
    if set(dict(target.named_parameters())) != set(params) or set(dict(target.named_buffers())) != set(buffers):
        raise ValueError("the two forms of the model do not have the same parameters and buffers")
    for table, attr in ((params, "_parameters"), (buffers, "_buffers")):
        for name, tensor in table.items():
            owner, _, leaf = name.rpartition(".")
            getattr(target.get_submodule(owner), attr)[leaf] = tensor
    return target


def make_bundle(
    name: str,
    model: nn.Module,
    class_names: Sequence[str],
    *,
    input_size: int = 224,
    resize_size: int | None = None,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    cam_layer: str | None = None,
    linear_head: str | None = None,
    device: torch.device | str | None = None,
    weights: str = "",
    batch_size: int | None = None,
    cam_reshape: str | None = None,
    rectifier_model: nn.Module | None = None,
) -> ModelBundle:
    """Put a model in eval mode on the device, freeze its parameters (attributions need
    input gradients only) and wrap it with its metadata. `rectifier_model`: the form of
    the same network for `Method.sees_rectifiers` methods; its own tensors are replaced
    by `model`'s."""
    device = torch.device(device) if device is not None else default_device()
    model = model.eval().to(device)
    model.requires_grad_(False)
    if rectifier_model is not None:
        rectifier_model = share_tensors(model, rectifier_model.eval())
    if cam_layer is not None:
        model.get_submodule(cam_layer)  # fail early on a wrong name
    if linear_head is not None and not isinstance(model.get_submodule(linear_head), nn.Linear):
        raise ValueError(f"{linear_head!r} is not an nn.Linear layer")
    if cam_reshape is not None:
        cam_reshape_function(cam_reshape)  # fail early on an unknown name
    return ModelBundle(
        name=name,
        model=model,
        class_names=list(class_names),
        input_size=input_size,
        resize_size=resize_size or round(input_size * 256 / 224),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        cam_layer=cam_layer,
        linear_head=linear_head,
        device=device,
        weights=weights,
        model_id=f"{name}-{state_dict_digest(model)}",
        batch_size=batch_size or default_batch_size(device),
        cam_reshape=cam_reshape,
        rectifier_model=rectifier_model,
    )
