"""Headless reports, for CI and batches.

    python -m reports build --model efficientnet_lite0 --images chelsea,coffee \\
        --methods gradcam,integrated_gradients --sections gallery --out report.html
    python -m reports list
    python -m reports delete <id>

`--images` is a folder (every image file in it, sorted by name), one image file, a
comma-separated list of sample names, or `samples` (the app's default samples).
Progress goes to stderr as bars; the output path (or the saved id) to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

import explain
from explain.data.datasets import IMAGE_SUFFIXES
from explain.data.images import read_image_file
from explain.metrics import deletion_insertion, pic_metrics, random_seed_masks
from explain.models.state_dicts import first_line
from explain.plots.overlay import COLORMAPS, SIGN_MODES, DisplaySettings

from .render import render_report
from .report import Report
from .sections import Section, deletion_insertion_section, gallery_section, sic_aic_section
from .store import ReportStore, share_link

DEFAULT_SAMPLES = ("chelsea", "coffee", "astronaut")


class UsageError(ValueError):
    """Bad command-line input; the message is for the person who typed it."""


@dataclass
class Inputs:
    """What every section of one CLI run shares: model, images, class, methods, and
    the attribution maps (computed once, on first use, for all sections)."""

    bundle: explain.ModelBundle
    names: list[str]
    batch: torch.Tensor
    target: int | None
    methods: dict[str, dict[str, Any]]
    display_settings: DisplaySettings
    quiet: bool = False
    _maps: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def bar(self, total: int, desc: str, unit: str = "img") -> tqdm:
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=self.quiet, dynamic_ncols=True)

    def run_with_bar(self, desc: str, unit: str, work: Callable[[Callable[[int, int], None]], Any]) -> Any:
        """Run `work(progress)` with a terminal bar driven by its `progress(done, total)` calls."""
        with self.bar(0, desc, unit) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            return work(progress)

    @property
    def display(self) -> np.ndarray:
        return self.bundle.to_display(self.batch)

    def maps(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            self._maps = {}
            n = len(self.names)
            with self.bar(n * len(self.methods), "attributions") as bar:
                for i, (key, params) in enumerate(self.methods.items()):
                    bar.set_postfix_str(key)

                    def progress(done: int, total: int, i: int = i) -> None:
                        bar.n = i * n + done
                        bar.refresh()

                    self._maps[key] = explain.attribute(self.bundle, self.batch, key, self.target, progress=progress, **params)
        return self._maps


def build_gallery(inputs: Inputs) -> Section:
    return gallery_section(
        inputs.bundle, inputs.names, inputs.display, inputs.maps(), inputs.methods, inputs.target,
        inputs.bundle.top_k(inputs.batch, 5), inputs.display_settings,
    )


def build_deletion_insertion(inputs: Inputs) -> Section:
    maps = inputs.maps()
    result = inputs.run_with_bar(
        "deletion/insertion", "pass",
        lambda progress: deletion_insertion(inputs.bundle, inputs.batch, maps, inputs.target, progress=progress),
    )
    return deletion_insertion_section(inputs.bundle, inputs.names, result, inputs.methods)


def build_sic_aic(inputs: Inputs) -> Section:
    maps = inputs.maps()
    n, _, height, width = inputs.batch.shape
    seed_masks = random_seed_masks(n, height, width, seed=0)
    result = inputs.run_with_bar(
        "SIC/AIC", "img",
        lambda progress: pic_metrics(inputs.bundle, inputs.batch, maps, seed_masks, inputs.target, progress=progress),
    )
    return sic_aic_section(inputs.bundle, inputs.names, result, inputs.methods, {"seed pixels": "1% random, seed 0"})


SECTION_BUILDERS: dict[str, Callable[[Inputs], Section]] = {
    "gallery": build_gallery, "deletion_insertion": build_deletion_insertion, "sic_aic": build_sic_aic,
}


def load_images(spec: str, max_images: int | None = None) -> list[explain.NamedImage]:
    """Images from a folder, a file, sample names or `samples`; unreadable files are
    reported on stderr and skipped."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UsageError(f"{spec}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder.")
    elif path.is_file():
        files = [path]
    else:
        names = DEFAULT_SAMPLES if spec == "samples" else tuple(n.strip() for n in spec.split(",") if n.strip())
        unknown = [n for n in names if n not in explain.sample_names()]
        if unknown or not names:
            raise UsageError(
                f"--images {spec!r}: not a folder, not a file, and not sample names "
                f"(samples: {', '.join(explain.sample_names())})."
            )
        return [explain.NamedImage(n, explain.load_sample(n)) for n in names][:max_images]
    images = []
    for file in files[:max_images] if max_images else files:
        try:
            data = read_image_file(file, file.name)  # size checked before reading
            images.append(explain.NamedImage(file.name, explain.load_image_bytes(data, file.name)))
        except explain.ImageLoadError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
    if not images:
        raise UsageError(f"{spec}: none of the files could be read as an image.")
    return images


def parse_params(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--param method.name=value` options -> {method: {name: value}}, checked by the registry."""
    params: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or method not in params:
            raise UsageError(f"--param {item!r}: expected METHOD.NAME=VALUE with METHOD one of {', '.join(methods)}.")
        params[method][name] = value
    for method, values in params.items():
        params[method] = explain.get_method(method).resolve_params(values)
    return params


def load_bundle(args: argparse.Namespace) -> explain.ModelBundle:
    """The named model, or the user's own: a state dict for a torchvision architecture
    (`--weights` with `--arch`, read with weights_only) or a TorchScript file."""
    if args.weights and args.torchscript:
        raise UsageError("give either --weights or --torchscript, not both")
    path = args.weights or args.torchscript
    if not path:
        print(f"loading {args.model}...", file=sys.stderr)
        return explain.load_model(args.model, device=args.device)
    from explain.models import CustomModelError, UploadedModel, load_uploaded_model, parse_class_names

    if args.weights and not args.arch:
        raise UsageError("--weights needs --arch (a torchvision architecture name, e.g. resnet18)")
    try:
        names = None
        if args.class_names:
            names = tuple(parse_class_names(Path(args.class_names).read_bytes(), Path(args.class_names).name))
        upload = UploadedModel(
            filename=Path(path).name, data=Path(path).read_bytes(), kind="state_dict" if args.weights else "torchscript",
            architecture=args.arch, num_classes=args.num_classes, class_names=names,
        )
        print(f"loading {upload.filename}...", file=sys.stderr)
        # Your own file on your own machine: TorchScript is allowed here (the app asks its operator).
        return load_uploaded_model(upload, allow_torchscript=True, max_bytes=8 * 2**30, device=args.device)
    except CustomModelError as exc:
        raise UsageError(str(exc)) from None


def check_device(text: str | None) -> torch.device | None:
    """The `--device` as a torch device, refused with a one-line message when torch does
    not know it or this machine lacks it (checked before any model is loaded)."""
    if text is None:
        return None
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r}: not a device torch knows; use cpu or cuda (cuda:N for one GPU).") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {text}: this machine has no usable CUDA GPU; use --device cpu.")
        if device.index is not None and device.index >= count:
            raise UsageError(f"--device {text}: this machine has {count} CUDA GPU(s), numbered from 0.")
    elif device.type != "cpu":
        raise UsageError(f"--device {text}: only cpu and cuda are supported.")
    return device


def build_report(args: argparse.Namespace) -> tuple[Report, str]:
    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be at least 1, not {args.max_images}")
    args.device = check_device(args.device)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTION_BUILDERS]
    if unknown:
        raise UsageError(f"unknown section(s) {', '.join(unknown)}; available: {', '.join(SECTION_BUILDERS)}")
    if not sections:
        raise UsageError("--sections is empty")
    for method in methods:
        explain.get_method(method)  # unknown names fail here, before the model loads
    if not methods:
        raise UsageError("--methods is empty")
    images = load_images(args.images, args.max_images)
    bundle = load_bundle(args)
    for method in methods:
        explain.get_method(method).check_available(bundle)
    if args.target is not None and not 0 <= args.target < bundle.num_classes:
        raise UsageError(f"--target {args.target} is out of range for {bundle.num_classes} classes")
    inputs = Inputs(
        bundle=bundle,
        names=[im.name for im in images],
        batch=bundle.preprocess_batch([im.image for im in images]),
        target=args.target,
        methods=parse_params(args.param, methods),
        display_settings=DisplaySettings(colormap=args.colormap, sign=args.sign),
        quiet=args.quiet,
    )
    built = [SECTION_BUILDERS[name](inputs) for name in sections]
    report = Report.assemble(args.title, built, author=args.author, description=args.description)
    return report, render_report(report)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports", description="Self-contained HTML reports of image-classifier explanations.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="compute and write a report")
    build.add_argument("--model", default=explain.DEFAULT_MODEL, help="model name (default %(default)s)")
    build.add_argument("--weights", default=None, help="your model: a state-dict file (.pt/.pth/.safetensors) for --arch")
    build.add_argument("--arch", default=None, help="torchvision architecture of --weights (e.g. resnet18)")
    build.add_argument("--num-classes", type=int, default=None, help="class count of --weights (default: from --class-names)")
    build.add_argument("--torchscript", default=None, help="your model as a TorchScript file")
    build.add_argument("--class-names", default=None, help="class names: one per line, or JSON")
    build.add_argument("--images", default="samples", help="folder, image file, comma-separated sample names, or 'samples'")
    build.add_argument("--max-images", type=int, default=None, help="use at most this many images")
    build.add_argument("--methods", default="gradcam,integrated_gradients,smoothgrad", help="comma-separated method keys")
    build.add_argument("--param", action="append", default=[], metavar="METHOD.NAME=VALUE", help="method parameter (repeatable)")
    build.add_argument("--sections", default="gallery", help=f"comma-separated, in order; available: {', '.join(SECTION_BUILDERS)}")
    build.add_argument("--target", type=int, default=None, help="class index to explain (default: each image's top-1)")
    build.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    build.add_argument("--colormap", default="jet", choices=COLORMAPS)
    build.add_argument("--sign", default="absolute", choices=SIGN_MODES)
    build.add_argument("--title", default="Attribution report")
    build.add_argument("--author", default="")
    build.add_argument("--description", default="")
    build.add_argument("--out", default=None, help="HTML file to write (default: report.html unless --save)")
    build.add_argument("--save", action="store_true", help="also store it in the report store and print its share link")
    build.add_argument("--base-url", default="", help="app URL to prefix share links with")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    listing = commands.add_parser("list", help="list saved reports")
    listing.add_argument("--base-url", default="")
    delete = commands.add_parser("delete", help="delete a saved report")
    delete.add_argument("id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    store = ReportStore()
    try:
        if args.command == "build":
            started = time.perf_counter()
            report, html = build_report(args)
            out = args.out or (None if args.save else "report.html")
            if out:
                Path(out).write_text(html, encoding="utf-8")
                print(f"wrote {out} ({len(html.encode()) / 2**20:.1f} MB) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
                print(out)
            if args.save:
                saved = store.save(report, html)
                print(share_link(saved.id, args.base_url))
        elif args.command == "list":
            for saved in store.list():
                print(f"{saved.id}  {saved.created}  {saved.size_bytes / 2**20:.1f} MB  {saved.title}  {share_link(saved.id, args.base_url)}")
        elif args.command == "delete":
            store.delete(args.id)
            print(f"deleted {args.id}", file=sys.stderr)
    except explain.ModelUnavailableError as exc:
        print(f"error: {exc} {exc.operator_hint}".rstrip(), file=sys.stderr)  # the CLI runs on the operator's machine
        return 2
    except (UsageError, ValueError, LookupError, OSError) as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    return 0
