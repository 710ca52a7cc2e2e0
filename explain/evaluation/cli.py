"""`python -m explain evaluate` and `python -m explain train-small-cnn`.

    python -m explain train-small-cnn --epochs 1,2,3 --out ckpts/
    python -m explain evaluate --weights 'ckpts/*.pt' --arch small_cnn --data mnist \\
        --methods saliency,gradcam --metrics deletion_insertion,sic_aic --out results/
    python -m explain evaluate --factory mypkg.nets:build --weights 'runs/*.safetensors' --data images/
    python -m explain evaluate --model timm:convnext_tiny.fb_in1k --model hf:google/vit-base-patch16-224 ...
    python -m explain evaluate ... --ray                     # a local Ray cluster
    python -m explain evaluate ... --ray-address auto        # join a running one (or set RAY_ADDRESS)

Progress goes to stderr as a bar with rate and ETA; the results directory and a
leaderboard to stdout. Ctrl-C stops; a rerun with the same settings and `--out` goes on
from the chunks already written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from ..commandline import (
    UsageError, add_model_options, apply_download_choice, check_device, exit_code, parse_params, run_job,
    weights_architecture,
)
from ..jobs import cache_command, default_runner
from ..methods.registry import MethodSpec, get_method
from ..metrics import get_metric, list_metrics
from .analysis import CLASS_MODES, DEFAULT_CHUNK, Evaluation, EvaluationInputs, MetricChoice
from .executors import ExecutionOptions
from .results import EvaluationResult
from .sources import DataSource, model_sources

DEFAULT_METHODS = "saliency,gradcam,integrated_gradients"
DEFAULT_METRICS = "deletion_insertion,sic_aic"


def _keys(text: str, what: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise UsageError(f"--{what} is empty")
    return keys


def evaluation_from_args(args: argparse.Namespace) -> Evaluation:
    """The settings the arguments describe (models listed and hashed, data listed)."""
    methods = _keys(args.methods, "methods")
    metrics = _keys(args.metrics, "metrics")
    for key in methods:
        get_method(key)
    for key in metrics:
        get_metric(key)
    params = parse_params(args.param, methods + metrics)
    class_names = None
    if args.class_names:
        from ..models import parse_class_names

        class_names = parse_class_names(Path(args.class_names).read_bytes(), Path(args.class_names).name)
    data = DataSource.of(args.data, args.max_images, truth=args.masks)
    needs_truth = [m for m in metrics if get_metric(m).needs_masks]
    if needs_truth and not data.has_truth:
        raise UsageError(f"--metrics {','.join(needs_truth)} need ground truth: give --masks (a masks folder or zip, "
                         "or a boxes CSV/JSON), or use --data decoy-mnist")
    weights, arch = list(args.weights), weights_architecture(args)
    names = args.model or ([] if weights or args.torchscript else ["efficientnet_lite0"])
    if data.kind == "decoy-mnist" and not (args.model or weights or args.torchscript):
        from ..models.decoy import decoy_checkpoint
        from ..models.small_cnn import ARCHITECTURE

        names, weights, arch = [], [str(decoy_checkpoint())], ARCHITECTURE  # the model trained on the decoys
    models = model_sources(names, weights, arch, args.num_classes, args.torchscript, class_names)
    return Evaluation.of(
        models,
        data,
        tuple(MethodSpec.of(m, params[m]) for m in methods),
        tuple(MetricChoice.of(m, params[m]) for m in metrics),
        class_mode=args.explain,
        chunk_size=args.chunk_size,
        save_maps=args.save_maps,
        out=args.out,
    )


def evaluate(args: argparse.Namespace) -> EvaluationResult:
    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be at least 1, not {args.max_images}")
    device = check_device(args.device)
    apply_download_choice(args)
    analysis = evaluation_from_args(args)
    executor = "ray" if args.ray or args.ray_address or (os.environ.get("RAY_ADDRESS") and not args.local) else "local"
    inputs = EvaluationInputs(executor, ExecutionOptions(None if device is None else str(device), args.threads),
                              ray_address=args.ray_address, workers=args.workers)
    print(f"evaluating into {analysis.out} ({executor} executor)", file=sys.stderr)
    return run_job(default_runner(), analysis, inputs, "evaluation", args.quiet)


def train_small_cnn(args: argparse.Namespace) -> None:
    """The small CNN trained on the MNIST subset's 4,000 training images for each number
    of epochs (its own one-cycle schedule each), saved as plain state dicts."""
    from ..data.training import mnist_subset
    from ..models.small_cnn import (
        TrainRecipe,
        accuracy,
        save_state_dict,
        torch_threads,
        train_small_cnn as train,
        training_threads,
    )

    try:
        epochs = sorted({int(e) for e in args.epochs.split(",") if e.strip()})
    except ValueError:
        raise UsageError(f"--epochs {args.epochs!r}: expected comma-separated whole numbers") from None
    if not epochs or min(epochs) < 1 or max(epochs) > 100:
        raise UsageError("--epochs: each between 1 and 100")
    data = mnist_subset()
    out = Path(args.out)
    with torch_threads(args.threads or training_threads()):
        for e in epochs:
            model = train(data, data.train_x, data.train_y, TrainRecipe(epochs=e), args.seed)
            path = out / f"small_cnn-e{e}.pt"
            save_state_dict(model, path)
            print(f"{path}  test accuracy {accuracy(model, data.test_x, data.test_y):.3f}", file=sys.stderr)
            print(path)


def add_commands(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser("evaluate", help="evaluate explanations of many models over a dataset, into Parquet")
    add_model_options(ev, repeatable=True)
    ev.add_argument("--data", default="mnist",
                    help="mnist (the 1,000 held-out images of the bundled MNIST subset, the digits in turn), mnist-all "
                         "(5,000), decoy-mnist (the known-truth benchmark: its own model and masks), a labelled image "
                         "folder or a .zip of one")
    ev.add_argument("--masks", default=None, metavar="PATH",
                    help="ground truth of --data: a folder or .zip of masks mirroring the images (same paths, "
                         "non-zero = evidence), or boxes in a .csv/.json (image,x0,y0,x1,y1); localisation needs it")
    ev.add_argument("--max-images", type=int, default=None, help="use the first N images")
    ev.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated method keys (default %(default)s)")
    ev.add_argument(
        "--metrics",
        default=DEFAULT_METRICS,
        help="comma-separated metric families (default %(default)s); any of "
        + ", ".join(m.key for m in list_metrics()),
    )
    ev.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="OWNER.NAME=VALUE",
        help="a method's or a metric's parameter, e.g. smoothgrad.n_samples=32 or deletion_insertion.steps=16",
    )
    ev.add_argument(
        "--explain", default="top1", choices=CLASS_MODES, help="class explained: each image's top-1 or its label"
    )
    ev.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK, help="images per stored part (default %(default)s)"
    )
    ev.add_argument("--save-maps", action="store_true", help="also keep the maps and crops (compressed .npz)")
    ev.add_argument("--out", default=None, help="results directory (default: under $EXPLAIN_CACHE_DIR/evaluations/)")
    ev.add_argument("--device", default=None, help="cpu or cuda (local executor; default: cuda when available)")
    ev.add_argument(
        "--threads", type=int, default=None, help="intra-op threads per worker (default: this machine's cores)"
    )
    ev.add_argument(
        "--ray", action="store_true", help="run on Ray: a local cluster (one actor per GPU, else per --threads CPUs)"
    )
    ev.add_argument("--ray-address", default=None, help="join this Ray cluster (also RAY_ADDRESS)")
    ev.add_argument("--local", action="store_true", help="run in this process even when RAY_ADDRESS is set")
    ev.add_argument("--workers", type=int, default=None, help="Ray: at most this many actors")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    train = commands.add_parser(
        "train-small-cnn", help="train the small CNN on the bundled MNIST subset, one checkpoint per epoch count"
    )
    train.add_argument("--epochs", default="1,2,3", help="comma-separated epoch counts (default %(default)s)")
    train.add_argument("--out", default="ckpts", help="folder for the checkpoints (default %(default)s)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: $EXPLAIN_TRAIN_THREADS or 1)"
    )
    cache_command.add_command(commands)


def print_summary(result: EvaluationResult) -> None:
    """The leaderboard of the last model by the first score, on stdout."""
    score = result.score()
    last = len(result.models) - 1
    print(f"{result.root}")
    accuracy = result.accuracy()
    if not accuracy.empty:
        print(accuracy[["model", "images", "accuracy"]].to_string(index=False))
    print(f"\nleaderboard of {result.models[last]} by {score.name} ({score.direction}):")
    print(result.leaderboard_display(score, last).to_string())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explain", description="Batch commands of the explanation backend.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_commands(commands)
    args = parser.parse_args(argv)

    def command() -> None:
        if args.command == "evaluate":
            print_summary(evaluate(args))
        elif args.command == "train-small-cnn":
            train_small_cnn(args)
        elif args.command == "cache":
            cache_command.run(args)

    return exit_code(
        command, "stopped; finished chunks are stored and a rerun with the same settings goes on from them"
    )
