"""The README's 8-image report CLI, this checkout against an earlier commit, alternately.

    .venv/bin/python bench/bench_cli.py [--base ed7136c] [--repeats 3] [--threads 1]

Checks the base commit out once into a temporary git worktree (`git worktree add
--detach`, removed at the end) that uses this checkout's venv, then runs

    python -m reports build --model efficientnet_lite0 --images <8 sample names> \\
        --methods gradcam,integrated_gradients,vargrad --sections gallery,deletion_insertion,sic_aic --out <tmp>.html

in each checkout in turn (base, ours, base, ours...), each in a fresh process with
`OMP_NUM_THREADS=--threads` (default 1: on a shared 2-core machine two OpenMP threads
wait on each other's descheduling and the times swing tenfold) and the same
environment otherwise, an empty `EXPLAIN_CACHE_DIR` each (results persist since the
job store: a second run would only read them). Prints every wall time and CPU time (user + system of the child:
on a machine shared with other jobs the wall time mostly measures how much of a core
the run was given), the medians and their ratios (issue 15's target: ours <= 0.6x the base). Load averages are
printed before and after.
`--sections gallery,deletion_insertion` leaves out SIC/AIC, whose WebP encoding and
Delaunay interpolation do not run the model.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = "chelsea,coffee,astronaut,rocket,motorcycle,china,flower,hubble"
SECTIONS = "gallery,deletion_insertion,sic_aic"
ARGS = ["-m", "reports", "build", "--model", "efficientnet_lite0", "--images", IMAGES, "--quiet",
        "--methods", "gradcam,integrated_gradients,vargrad"]


def run(checkout: Path, out: Path, env: dict[str, str], sections: str) -> tuple[float, float]:
    """(wall seconds, user + system CPU seconds) of one CLI run, with a cache directory
    of its own (`out` beside it): stored maps and jobs of an earlier run are not reused."""
    env = {**env, "EXPLAIN_CACHE_DIR": str(out.with_suffix(".cache"))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), *ARGS, "--sections", sections, "--out", str(out)],
                   cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="ed7136c", help="commit to compare with (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sections", default=SECTIONS, help="report sections (default: the README's, %(default)s)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` removes the worktree
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), args.base], cwd=ROOT, check=True)
        try:
            head = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            print(f"report CLI, 8 images, gradcam + integrated_gradients + vargrad, sections {args.sections}; "
                  f"OMP_NUM_THREADS={args.threads}; base {args.base}, ours {head} (+ working tree)")
            print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            times: dict[str, list[float]] = {"base": [], "ours": []}
            cpu: dict[str, list[float]] = {"base": [], "ours": []}
            for i in range(args.repeats):
                for label, checkout in (("base", base), ("ours", ROOT)):
                    seconds, cpu_seconds = run(checkout, Path(tmp) / f"{label}{i}.html", env, args.sections)
                    times[label].append(seconds)
                    cpu[label].append(cpu_seconds)
                    print(f"  {label} run {i + 1}: {seconds:6.1f} s wall, {cpu_seconds:6.1f} s CPU", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    b, o = statistics.median(times["base"]), statistics.median(times["ours"])
    cb, co = statistics.median(cpu["base"]), statistics.median(cpu["ours"])
    print(f"median wall: base {b:.1f} s, ours {o:.1f} s; ratio ours / base {o / b:.2f} (target <= 0.6)")
    print(f"median CPU (user + system): base {cb:.1f} s, ours {co:.1f} s; ratio {co / cb:.2f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
