"""A small CNN trained from scratch with one fixed recipe: the model that ROAR retrains.

Conv-BN-ReLU blocks, global average pooling and one linear layer, so CAM and Grad-CAM
apply (`cam_layer="features"`, `linear_head="fc"`). Training is seeded: the weights
are initialised from a generator of their own seeded with `seed` (never the global one,
which other threads use) and mini-batches are drawn from another seeded with the same
value, so the same data, recipe and seed give the same model. The model trained on the unmodified data is cached
on disk (`cache_dir()/models`, state dict, loaded with `weights_only=True`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import cache_dir
from ..data.training import LabelledImages
from .bundle import ModelBundle, make_bundle
from .reinit import reinitialise
from .zoo import materialize, skeleton

THREADS_ENV = "EXPLAIN_TRAIN_THREADS"


class TrainingStopped(RuntimeError):
    """Training was interrupted on request (the job was cancelled)."""


def training_threads() -> int:
    """Intra-op threads for SmallCNN work: `$EXPLAIN_TRAIN_THREADS`, else 1. Layers this
    small gain little from a second thread and lose a lot when the cores are shared
    (measured here: 0.26 s with 1 thread vs 2-5 s with 2 on a busy 2-core machine)."""
    return max(1, int(os.environ.get(THREADS_ENV, "1")))


_THREADS_LOCK = threading.Lock()
_threads_users = 0
_threads_before = 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` intra-op threads. OpenMP keeps the setting per calling
    thread, but torch also makes it the default of threads started later, so blocks
    running at once in several threads (ROAR jobs) all restore the value found by the
    first of them: each restoring its own "previous" left every later thread (every
    page run) at one thread."""
    global _threads_users, _threads_before
    with _THREADS_LOCK:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
        _threads_users += 1
        before = _threads_before
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_users -= 1
            torch.set_num_threads(before)


class SmallCNN(nn.Module):
    """Three conv blocks (width, 2 width, 4 width channels), two 2x2 max-pools, GAP, linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = [in_channels, width, 2 * width, 4 * width]
        for i in range(3):
            layers += [
                nn.Conv2d(channels[i], channels[i + 1], 3, padding=1),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(),
            ]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@dataclass(frozen=True)
class TrainRecipe:
    """The fixed training recipe: Adam with a one-cycle learning-rate schedule."""

    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    width: int = 16

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.width < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid training recipe {self}")

    @property
    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def architecture_name(dataset: LabelledImages, recipe: TrainRecipe) -> str:
    """What identifies the architecture in cache keys and reports."""
    return (
        f"SmallCNN(in={dataset.channels}, classes={dataset.num_classes}, width={recipe.width}, "
        f"input={dataset.image_size})"
    )


def new_model(dataset: LabelledImages, recipe: TrainRecipe, seed: int) -> SmallCNN:
    """A freshly initialised SmallCNN; the same seed gives the same initial weights.

    PyTorch's default initialisation (the same draws, in the same order, as
    `torch.manual_seed(seed); SmallCNN(...)`), drawn from a local generator, so that
    concurrent threads neither change these weights nor see the global generator move."""
    model = skeleton(lambda: SmallCNN(dataset.channels, dataset.num_classes, recipe.width)).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        reinitialise(module, generator)  # as each module's reset_parameters(), with our generator
    return model


def train_small_cnn(
    dataset: LabelledImages,
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: TrainRecipe,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    should_stop: Callable[[], bool] | None = None,
) -> SmallCNN:
    """Train a SmallCNN from scratch on `images` (normalised, (N, C, H, W)); returns it in
    eval mode. `should_stop` is asked before every mini-batch: True raises `TrainingStopped`."""
    device = torch.device(device)
    model = new_model(dataset, recipe, seed).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    n = images.shape[0]
    steps_per_epoch = -(-n // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, recipe.learning_rate, total_steps=recipe.epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(seed)
    images, labels = images.to(device), labels.to(device)
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, recipe.batch_size):
            if should_stop is not None and should_stop():
                raise TrainingStopped("training was stopped")
            batch = order[start : start + recipe.batch_size]
            if batch.numel() < 2:  # BatchNorm needs two samples; a lone last sample is skipped
                continue
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of `images` whose top-1 prediction equals the label."""
    device = next(model.parameters()).device
    correct = 0
    for xs, ys in zip(images.split(batch_size), labels.split(batch_size), strict=True):
        correct += int((model(xs.to(device)).argmax(1).cpu() == ys).sum())
    return correct / max(1, labels.numel())


def base_model_path(dataset: LabelledImages, recipe: TrainRecipe, seed: int) -> Path:
    return cache_dir() / "models" / f"smallcnn-{dataset.key}-{recipe.key}-seed{seed}.pt"


def trained_base_model(
    dataset: LabelledImages, recipe: TrainRecipe = TrainRecipe(), seed: int = 0, *, device: torch.device | str = "cpu",
    should_stop: Callable[[], bool] | None = None,
) -> SmallCNN:
    """The SmallCNN trained on the unmodified training split: loaded from the disk cache,
    or trained (seconds on a CPU for the MNIST subset) and saved there on first use.
    `should_stop` as in `train_small_cnn`: a stopped training saves nothing."""
    path = base_model_path(dataset, recipe, seed)
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = materialize(skeleton(lambda: SmallCNN(dataset.channels, dataset.num_classes, recipe.width)), state)
        return model.to(device).eval()
    model = train_small_cnn(
        dataset, dataset.train_x, dataset.train_y, recipe, seed, device=device, should_stop=should_stop
    )
    save_state_dict(model, path)
    return model


def small_cnn_bundle(
    dataset: LabelledImages, model: SmallCNN, recipe: TrainRecipe, *, device: torch.device | str = "cpu"
) -> ModelBundle:
    """Wrap a SmallCNN for the method registry (CAM layer and linear head set, large batches)."""
    return make_bundle(
        f"small_cnn-{dataset.name}",
        model,
        dataset.class_names,
        input_size=dataset.image_size,
        resize_size=dataset.image_size,
        mean=dataset.mean,
        std=dataset.std,
        cam_layer="features",
        linear_head="fc",
        device=device,
        weights=f"trained here on {dataset.name} ({architecture_name(dataset, recipe)}, recipe {recipe.key})",
        batch_size=256,
    )


ARCHITECTURE = "small_cnn"  # the architecture name state-dict checkpoints of a SmallCNN are loaded under


def small_cnn_from_state_dict(state: dict[str, torch.Tensor], filename: str = "weights") -> SmallCNN:
    """A SmallCNN shaped by a state dict (input channels and width from its first
    convolution, classes from its linear head), its names and shapes checked on the
    meta device before any weight is allocated."""
    from .errors import CustomModelError
    from .state_dicts import fit_report

    first, head = state.get("features.0.weight"), state.get("fc.weight")
    if first is None or head is None or first.dim() != 4 or head.dim() != 2:
        raise CustomModelError(f"{filename}: not a SmallCNN state dict (no features.0.weight / fc.weight).")
    in_channels, width, classes = int(first.shape[1]), int(first.shape[0]), int(head.shape[0])
    model = skeleton(lambda: SmallCNN(in_channels, classes, width))
    problem = fit_report(model, state)
    if problem:
        raise CustomModelError(f"{filename} does not fit {ARCHITECTURE}: {problem}.")
    return materialize(model, state).eval()


def save_state_dict(model: nn.Module, path: Path) -> None:
    """The model's weights as a plain state dict (tensors only: `weights_only` reads it),
    written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
