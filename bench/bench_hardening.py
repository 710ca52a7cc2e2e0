"""How fast hostile or odd inputs are refused or handled: the speed targets that used to
be wall-time assertions in tests/test_hardening.py (the tests keep the outcomes and the
memory bounds; no test asserts on time). Target for each: under 2 s.

    .venv/bin/python bench/bench_hardening.py [--repeats 3]

- 80,000 class names with one repeat: the duplicate check;
- a 7 MB state dict that inflates to 1 GB: refused before it is inflated;
- a 2.6 kB state dict for regnet_y_128gf: refused before the architecture is built;
- 10,000 x 1 and 1 x 10,000 pixel PNGs: preprocessed to 224 x 224;
- a 1 GB file named .png in an allowed folder: skipped without being read.
Medians of wall and CPU time over repeats, in this process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_cpu_seconds, median_seconds  # noqa: E402

import explain  # noqa: E402
from explain.data.datasets import dataset_from_folder  # noqa: E402
from explain.models import CustomModelError, UploadedModel, build_torchvision_model, load_uploaded_model  # noqa: E402
from explain.models import parse_class_names  # noqa: E402
from tests.test_byom_backend import png_bytes  # noqa: E402
from tests.test_hardening import deflated_state_dict, png_of_size  # noqa: E402

TARGET_SECONDS = 2.0


def refused(fn) -> None:  # type: ignore[no-untyped-def]
    try:
        fn()
    except CustomModelError:
        return
    raise AssertionError("expected a refusal")


def cases(folder: Path) -> dict[str, object]:
    names = "\n".join([*(f"class {i:05d}" for i in range(80_000)), "class 00007"]).encode()
    bomb = folder / "bomb.pt"
    deflated_state_dict(bomb, 2**30)
    bomb_bytes = bomb.read_bytes()
    bundle = explain.make_bundle("id", torch.nn.Flatten(), ["a"], input_size=224, resize_size=256, device="cpu")
    strips = [explain.load_image_bytes(png_of_size(w, h), f"{w}x{h}.png") for w, h in ((10_000, 1), (1, 10_000))]
    (folder / "data" / "cat").mkdir(parents=True)
    (folder / "data" / "cat" / "a.png").write_bytes(png_bytes())
    with open(folder / "data" / "cat" / "big.png", "wb") as handle:
        handle.truncate(2**30)
    tiny = {"fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}
    return {
        "duplicate check, 80,000 names": lambda: refused(lambda: parse_class_names(names, "many.txt")),
        "1 GB deflated state dict refused": lambda: refused(lambda: load_uploaded_model(
            UploadedModel("bomb.pt", bomb_bytes, "state_dict", "resnet18", 1000), allow_torchscript=False,
            max_bytes=64 * 2**20)),
        "tiny state dict for regnet_y_128gf refused": lambda: refused(
            lambda: build_torchvision_model("regnet_y_128gf", 10, tiny, "tiny.pt")),
        "1-pixel-wide images preprocessed": lambda: bundle.preprocess_batch(strips),
        "1 GB .png in a folder skipped": lambda: dataset_from_folder(folder / "data", [folder / "data"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in cases(Path(tmp)).items():
            wall, cpu = median_seconds(fn, args.repeats), median_cpu_seconds(fn, args.repeats)
            verdict = "ok" if cpu < TARGET_SECONDS else "OVER TARGET"
            print(f"{name:<45} wall {wall:6.3f} s  cpu {cpu:6.3f} s  target < {TARGET_SECONDS:.0f} s  {verdict}")


if __name__ == "__main__":
    main()
