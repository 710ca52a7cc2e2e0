"""An analysis for job tests: `parts` numbered parts, each stored as it is done and
logged (one line per computation) to a file named in the inputs, so tests can count
what was computed, kill a process mid-run and resume. With a `gate` file named in the
inputs, computing part `gate_at` waits until that file exists: a test holds the job at a
known point (parts stored, nothing more) for as long as it needs, whatever the load."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Iterator

from explain.analyses.base import ANALYSES, Analysis, register_analysis
from explain.jobs import JobContext


@dataclass(frozen=True)
class CountInputs:
    log: str
    seconds: float = 0.0
    gate: str = ""
    gate_at: int = 0


def wait_for_gate(inputs: CountInputs, ctx: JobContext) -> None:
    """Hold the job until the gate file exists (a cancel still stops it)."""
    while inputs.gate and not os.path.exists(inputs.gate):
        ctx.check()
        time.sleep(0.01)


@dataclass(frozen=True)
class Counted:
    values: tuple[int, ...]


@dataclass(frozen=True)
class Countdown(Analysis):
    kind = "test_countdown"

    parts: int
    salt: str = ""

    def run(self, inputs: CountInputs, ctx: JobContext) -> Iterator[Counted]:
        ctx.plan(self.parts, "parts")
        values = []
        for i in range(self.parts):
            stored = ctx.parts.get_json(f"part-{i}")
            if stored is not None:
                ctx.reused(1)
            else:
                ctx.working_on(f"part {i}")
                if i == inputs.gate_at:
                    wait_for_gate(inputs, ctx)
                time.sleep(inputs.seconds)
                with open(inputs.log, "a") as log:
                    log.write(f"{os.getpid()} {i}\n")
                stored = {"value": i * i}
                ctx.parts.put_json(f"part-{i}", stored)
                ctx.advance(1)
            values.append(stored["value"])
            yield Counted(tuple(values))

    def load(self, ctx: JobContext) -> Counted | None:
        values = [ctx.parts.get_json(f"part-{i}") for i in range(self.parts)]
        return None if any(v is None for v in values) else Counted(tuple(v["value"] for v in values))


if Countdown.kind not in ANALYSES:
    register_analysis(Countdown)


if __name__ == "__main__":  # python -m tests.job_samples PARTS SECONDS LOG [GATE GATE_AT]: run it on the default runner
    from explain.jobs import default_runner

    parts, seconds, log = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    gate, gate_at = (sys.argv[4], int(sys.argv[5])) if len(sys.argv) > 5 else ("", 0)
    job = default_runner().submit(Countdown(parts), CountInputs(log, seconds, gate, gate_at))
    job.wait()
    print(job.state, job.result.values[-1] if job.result else None)
