"""What the command lines (`python -m explain`, `python -m reports`) share: usage
errors, `--param OWNER.NAME=VALUE` options checked by their registries, `--device`
checked before any model loads, and a job followed on the terminal with a progress bar."""

from __future__ import annotations

import logging
import argparse
import os
import sys
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from .jobs import DONE, JobRunner
from .methods.registry import get_method
from .metrics import get_metric, list_metrics


class UsageError(ValueError):
    """Bad command-line input; the message is for the person who typed it."""


def run_job(runner: JobRunner, analysis: Any, inputs: Any, desc: str, quiet: bool) -> Any:
    """Run `analysis` as a job with a terminal bar (units, rate, ETA from the job's own
    progress); stored results come back at once. Ctrl-C cancels the job."""
    job = runner.submit(analysis, inputs)
    with tqdm(total=0, desc=desc, file=sys.stderr, disable=quiet, dynamic_ncols=True) as bar:
        try:
            while not job.wait(0.2):
                p = job.progress
                bar.unit, bar.total, bar.n = p.unit, _count(p.total), _count(p.done)
                bar.set_postfix_str(p.label[:60], refresh=True)
        except KeyboardInterrupt:
            job.cancel()
            job.wait()
            raise
        p = job.progress
        bar.unit, bar.total, bar.n = p.unit, _count(max(p.total, p.done)), _count(p.done)
        bar.set_postfix_str("", refresh=True)
    if job.state != DONE:
        raise RuntimeError(f"{desc}: {job.error or job.state}")
    return job.result


def _count(value: float) -> int | float:
    """A count as the bar shows it: whole from 10 on (work done inside a unit is fractional)."""
    return round(value) if float(value).is_integer() or abs(value) >= 10 else round(value, 1)


def parse_params(items: Sequence[str], owners: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--param OWNER.NAME=VALUE` options -> {owner: {name: value}}, each owner (a method
    or a metric) checking its own values through its registry."""
    params: dict[str, dict[str, Any]] = {o: {} for o in owners}
    for item in items:
        key, sep, value = item.partition("=")
        owner, dot, name = key.partition(".")
        if not sep or not dot or owner not in params:
            raise UsageError(f"--param {item!r}: expected METHOD.NAME=VALUE or METRIC.NAME=VALUE with METHOD or METRIC "
                             f"one of {', '.join(owners)}.")
        params[owner][name] = value
    metric_keys = {m.key for m in list_metrics()}
    for owner, values in params.items():
        params[owner] = (get_metric(owner) if owner in metric_keys else get_method(owner)).resolve_params(values)
    return params


def check_device(text: str | None) -> torch.device | None:
    """The `--device` as a torch device, refused with a one-line message when torch does
    not know it or this machine lacks it (checked before any model is loaded)."""
    if text is None:
        return None
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(
            f"--device {text!r}: not a device torch knows; use cpu or cuda (cuda:N for one GPU)."
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {text}: this machine has no usable CUDA GPU; use --device cpu.")
        if device.index is not None and device.index >= count:
            raise UsageError(f"--device {text}: this machine has {count} CUDA GPU(s), numbered from 0.")
    elif device.type != "cpu":
        raise UsageError(f"--device {text}: only cpu and cuda are supported.")
    return device


def exit_code(command: Callable[[], None], interrupted: str) -> int:
    """Run a CLI command: 0 when it ends, 2 with one line on stderr for what a user can
    fix (bad arguments, files, models), 130 with `interrupted` on Ctrl-C."""
    from .models.errors import ModelUnavailableError
    from .models.state_dicts import first_line

    quiet_job_tracebacks()
    try:
        command()
    except ModelUnavailableError as exc:
        print(f"error: {exc} {exc.operator_hint}".rstrip(), file=sys.stderr)  # the CLI runs on the operator's machine
        return 2
    except (UsageError, ValueError, LookupError, OSError, RuntimeError) as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    return 0


DEBUG_ENV = "EXPLAIN_DEBUG"


def quiet_job_tracebacks() -> None:
    """On a terminal, a failed job is the one `error:` line `exit_code` prints: the job
    runner's log of its traceback (for the app's server log) is kept off stderr unless
    `EXPLAIN_DEBUG=1`."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return
    jobs_log = logging.getLogger("explain.jobs")
    if not any(isinstance(h, logging.NullHandler) for h in jobs_log.handlers):
        jobs_log.addHandler(logging.NullHandler())
        jobs_log.propagate = False
def add_model_options(parser: argparse.ArgumentParser, *, repeatable: bool) -> None:
    """The model arguments both CLIs take: a reference (`--model`), the weights files and
    what builds them (`--arch`, `--factory`), TorchScript files, class settings, downloads."""
    from .models.sources import list_sources

    refs = "; ".join(f"{s.name}:{s.reference}" for s in list_sources() if s.name not in ("torchvision", "factory"))
    many = "(repeatable)" if repeatable else ""
    parser.add_argument("--model", action="append" if repeatable else "store", default=[] if repeatable else None,
                        help=f"a model reference: efficientnet_lite0 (default), a torchvision zoo name, "
                             f"or {refs} {many}")
    parser.add_argument("--weights", action="append" if repeatable else "store", default=[] if repeatable else None,
                        metavar="GLOB" if repeatable else "FILE",
                        help="your weights (.pt/.pth/.safetensors, read weights-only) for --arch or --factory " + many)
    parser.add_argument("--arch", default=None,
                        help="architecture of --weights: a torchvision name, timm:NAME"
                             + (" or small_cnn" if repeatable else ""))
    parser.add_argument("--factory", default=None, metavar="PKG.MOD:FUNCTION",
                        help="your own architecture: a function building the nn.Module, for --weights")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="class count of --weights (default: from the file or --class-names)")
    parser.add_argument("--torchscript", action="append" if repeatable else "store", default=[] if repeatable else None,
                        metavar="GLOB" if repeatable else "FILE", help="your model as a TorchScript file " + many)
    parser.add_argument("--class-names", default=None, help="class names: one per line, or JSON")
    downloads = parser.add_mutually_exclusive_group()
    downloads.add_argument("--allow-downloads", action="store_true",
                           help="fetch hub/zoo weights when missing (the default here)")
    downloads.add_argument("--offline", action="store_true", help="never download weights")


def apply_download_choice(args: argparse.Namespace) -> bool:
    """Downloads are on for the local CLI unless `--offline` (or `EXPLAIN_ALLOW_DOWNLOADS=0`
    in the environment, which `--allow-downloads` overrides); the choice goes to the
    environment so that the loader (and local workers) see it."""
    from .config import DOWNLOADS_ENV, TRUE_WORDS

    switched_off = os.environ.get(DOWNLOADS_ENV, "").strip().lower() not in ("", *TRUE_WORDS)
    allowed = args.allow_downloads or not (args.offline or switched_off)
    os.environ[DOWNLOADS_ENV] = "1" if allowed else "0"
    if not allowed:
        os.environ["HF_HUB_OFFLINE"] = "1"
    return allowed


def weights_architecture(args: argparse.Namespace) -> str | None:
    """The reference that builds `--weights`: `--factory` (as `factory:PKG.MOD:FUNCTION`) or `--arch`."""
    if args.factory and args.arch:
        raise UsageError("give either --arch or --factory for --weights, not both")
    return f"factory:{args.factory}" if args.factory else args.arch
