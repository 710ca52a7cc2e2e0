"""The explained class's output on many perturbed copies of a batch, batched on the model.

The perturbation metrics that build their inputs job by job (a job: one image under one
perturbation) share this loop: jobs go through the model `forward_batch_size` at a time,
each chunk built on the model's device by the metric's own `build(jobs)` (a single
`torch.where` over precomputed rank or subset maps, so building costs next to nothing),
under `torch.inference_mode()` and the bundle's `lock`, with progress counted in model
passes against the total the metric declares.
"""

from __future__ import annotations

from typing import Callable

import torch

from .batching import forward_batch_size
from .registry import MetricInput

OUTPUTS = ("probability", "logit")
OUTPUT_HELP = "probability: the explained class's softmax probability; logit: its logit (before the softmax)"
Build = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # job indices -> (inputs, their image rows)


class TargetOutputs:
    """The explained class's output (softmax probability or logit) of inputs built from
    `data`'s batch; `progress(done, total)` of `data` counts every pass against `total`."""

    def __init__(self, data: MetricInput, total: int, output: str = "probability") -> None:
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; choose one of {OUTPUTS}")
        self.bundle = data.bundle
        self.progress = data.progress
        self.output = output
        self.total = total
        self.done = 0
        self.targets = data.targets.to(self.bundle.device, torch.long)
        self.batch_size = forward_batch_size(self.bundle, tuple(data.images.shape[1:]))

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, classes) the model's logits of inputs on its device, one pass counted per input."""
        with torch.inference_mode(), self.bundle.lock:
            logits = self.bundle.model(inputs).float()
        self.done += len(inputs)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return logits

    def of(self, inputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(B,) float64 on the CPU: the output of each input for the target of image `rows`."""
        logits = self.logits(inputs)
        scores = logits.softmax(dim=1) if self.output == "probability" else logits
        return scores.gather(1, self.targets[rows, None])[:, 0].double().cpu()

    def of_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N,) the output of each image of a batch (in forward-sized chunks)."""
        rows = torch.arange(len(images), device=self.bundle.device)
        return torch.cat([self.of(chunk, index) for chunk, index in
                          zip(images.split(self.batch_size), rows.split(self.batch_size), strict=True)])

    def of_jobs(self, count: int, build: Build) -> torch.Tensor:
        """(count,) the output of every job 0 .. count-1, `build(jobs)` making each chunk's inputs."""
        out = torch.empty(count, dtype=torch.float64)
        for start in range(0, count, self.batch_size):
            jobs = torch.arange(start, min(start + self.batch_size, count), device=self.bundle.device)
            with torch.inference_mode():
                inputs, rows = build(jobs)
            out[start : start + len(jobs)] = self.of(inputs, rows)
        return out
