"""A visitor's compute budget: what one session may have queued or running, in model passes.

Every analysis knows its planned model passes before it starts (`planned_passes()`, from
the registry's cost model), so the runner can admit or refuse a job before spending
anything. The operator sets three caps (`explain.config.OperatorConfig`, see README
"Hosting"): the passes of one job, the passes one session may have queued or running at
once, and the share of the interactive slots one session may hold. A locked session (a
password configured and not entered) gets `locked_passes` for both caps, and its
parameter ranges stop at the registry's defaults (`param_ceiling`): only the cheap
defaults. The command line and the operator's own scripts pass no visitor and are not
budgeted.

The check runs in `JobRunner.admit`, the runner's single admission point, with the
runner's lock held, so two quick presses of Run cannot both slip under a cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .pools import JobLimitError

if TYPE_CHECKING:
    from ..analyses.base import Analysis
    from ..config import OperatorConfig
    from ..methods.registry import Param
    from .job import Job

UNLOCK_HINT = "Enter the upload password on the Model & data page for a larger budget."


class BudgetExceeded(JobLimitError):
    """The job would take this visitor over its budget; the message says the cap and how to get more."""


@dataclass(frozen=True)
class Budget:
    """Caps in model passes for one session: `job_passes` per job, `session_passes` for
    everything it has queued or running; `slots_share` of a pool's slots it may hold;
    `locked`: a locked session (cheap defaults only)."""

    job_passes: float
    session_passes: float
    slots_share: float
    locked: bool = False

    @classmethod
    def of(cls, config: OperatorConfig, *, unlocked: bool) -> "Budget":
        """The budget of a session under the operator's settings; `unlocked`: it may upload
        (no password configured, or the password entered)."""
        locked = config.error is not None or (config.auth != "none" and not unlocked)
        if locked:
            return cls(config.locked_passes, config.locked_passes, config.session_share, True)
        return cls(config.job_passes, config.session_passes, config.session_share, False)

    def slots(self, pool_limit: int) -> int:
        """How many of a pool's `pool_limit` active jobs this session may hold (at least one)."""
        return max(1, math.floor(pool_limit * self.slots_share))

    def describe(self) -> str:
        """The caps in one sentence, for the pages."""
        text = (f"Your budget: at most {format_passes(self.job_passes)} model passes per run and "
                f"{format_passes(self.session_passes)} queued or running at once.")
        return f"{text} {UNLOCK_HINT}" if self.locked else text


@dataclass(frozen=True)
class Visitor:
    """Who submits a job from a page: the session's id and its budget."""

    session: str
    budget: Budget


def format_passes(passes: float) -> str:
    """1234567 -> '1.23 million'; small counts as whole numbers with thousands separators."""
    if passes >= 1e6:
        return f"{passes / 1e6:.3g} million"
    return f"{passes:,.0f}"


def admit(analysis: Analysis, visitor: Visitor, active: Iterable[Job], pool_limit: int) -> float:
    """The passes `analysis` plans; `BudgetExceeded` when it would take `visitor` over a
    cap. `active`: the runner's active jobs (all sessions); `pool_limit`: its pool's
    queue limit."""
    budget = visitor.budget
    planned = analysis.planned_passes()
    hint = f" {UNLOCK_HINT}" if budget.locked else ""
    if planned > budget.job_passes:
        raise BudgetExceeded(f"This run plans {format_passes(planned)} model passes; one run may plan at most "
                             f"{format_passes(budget.job_passes)} here. Choose fewer images, methods or samples.{hint}")
    own = [j for j in active if j.owner == visitor.session]
    held = sum(j.planned_passes for j in own)
    if held + planned > budget.session_passes:
        raise BudgetExceeded(f"Your runs queued or running plan {format_passes(held)} model passes; with this one "
                             f"({format_passes(planned)}) they would pass your {format_passes(budget.session_passes)}. "
                             f"Wait for one to finish or stop one.{hint}")
    same_pool = [j for j in own if j.analysis.pool == analysis.pool]
    slots = budget.slots(pool_limit)
    if len(same_pool) >= slots:
        raise BudgetExceeded(f"You have {len(same_pool)} {analysis.pool} run(s) queued or running; one visitor may "
                             f"hold {slots} of the server's {pool_limit}. Wait for one to finish or stop one.")
    return planned


def param_ceiling(param: Param, cost_of: Callable[[Any], float], limit: float, *, cheap_only: bool) -> Any:
    """The largest value offered for a numeric `param` (None: its registered maximum):
    with `cheap_only`, the registry's default when a larger value costs more (a locked
    session); else the largest value whose cost `cost_of(value)` stays within `limit`
    (bisection: the costs grow with the value). Choices and flags are left as they are."""
    if param.choices or isinstance(param.default, bool) or param.max is None:
        return None
    integer = isinstance(param.default, int)
    top = param.max
    if cost_of(top) <= cost_of(param.default) or (not cheap_only and cost_of(top) <= limit):
        return None  # the value does not drive the cost, or every value fits
    if cheap_only:
        return param.default
    low, high = float(param.default if cost_of(param.default) <= limit else (param.min or 0)), float(top)
    for _ in range(40):
        middle = (low + high) / 2
        if integer:
            middle = math.floor(middle)
            if middle <= low:
                break
        if cost_of(int(middle) if integer else middle) <= limit:
            low = middle
        else:
            high = middle
    return int(low) if integer else low
