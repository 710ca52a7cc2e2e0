"""What bringing your own model and data costs, against the bare operations it wraps.

    .venv/bin/python bench/bench_byom.py [--images 1000] [--repeats 3]

- Model upload: `load_uploaded_model` on a resnet18 state dict (reads with
  weights_only, checks the fit, probes one forward pass, hashes the file) against bare
  `torch.load(weights_only=True)` + `load_state_dict` + one forward pass.
- Dataset zip: `dataset_from_zip` (in-memory, limits, safe decoding) on N 28x28 PNGs
  in class folders, against a bare loop of zipfile.read + PIL decode.
Medians over repeats.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_seconds  # noqa: E402
from explain.models import UploadedModel, load_uploaded_model  # noqa: E402
from explain.data.datasets import dataset_from_zip  # noqa: E402


def digits_zip(count: int) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(count):
            png = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(png, "PNG")
            archive.writestr(f"digits/{i % 10}/{i:05d}.png", png.getvalue())
    return buffer.getvalue()


def bare_zip_decode(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            Image.open(io.BytesIO(archive.read(name))).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), buffer)
    weights = buffer.getvalue()
    upload = UploadedModel("resnet18.pth", weights, "state_dict", "resnet18", 10)

    def bare_model() -> None:
        model = torchvision.models.resnet18(num_classes=10)
        model.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, 224, 224))

    ours = median_seconds(
        lambda: load_uploaded_model(upload, allow_torchscript=False, max_bytes=2**30, device="cpu"), args.repeats
    )
    bare = median_seconds(bare_model, args.repeats)
    print(
        f"model upload (resnet18, {len(weights) / 2**20:.0f} MB): {ours:.3f} s, bare {bare:.3f} s, ratio "
        f"{ours / bare:.2f}"
    )

    data = digits_zip(args.images)
    ours = median_seconds(lambda: dataset_from_zip(data, "digits.zip"), args.repeats)
    bare = median_seconds(lambda: bare_zip_decode(data), args.repeats)
    print(
        f"dataset zip ({args.images} PNGs, {len(data) / 2**20:.1f} MB): {ours:.3f} s ({args.images / ours:.0f} "
        "images/s), "
        f"bare {bare:.3f} s, ratio {ours / bare:.2f}"
    )


if __name__ == "__main__":
    main()
