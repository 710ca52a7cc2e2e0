"""A visitor's compute budget (issue 24): a locked session cannot plan more than its small
budget (the probe's 1.58e8 passes are refused before anything runs), one session cannot
take every interactive slot (the next visitor still gets one), parameter ranges stop
where their cost passes the budget, and the operator's settings are read and checked."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from explain.analyses.base import ANALYSES, Analysis, register_analysis
from explain.analyses.inputs import ImageRef, Subject
from explain.analyses.metric import MetricAnalysis
from explain.config import OperatorConfig, read_operator_config
from explain.jobs import Budget, BudgetExceeded, JobContext, JobRunner, JobStore, Visitor
from explain.jobs.budget import param_ceiling
from explain.methods.registry import MethodSpec, get_method

LOCKED_CONFIG = read_operator_config({"explain": {"upload_password": "s3cret"}}, environ={})
RELEASE = threading.Event()


@dataclass(frozen=True)
class Held(Analysis):
    """An analysis that plans `passes` and runs until `RELEASE` is set."""

    kind = "test_held"
    passes: int
    seed: int = 0

    def planned_passes(self, size: int = 224) -> float:
        return float(self.passes)

    def run(self, inputs: Any, ctx: JobContext) -> Iterator[int]:
        RELEASE.wait(60)
        yield self.passes

    def load(self, ctx: JobContext) -> int | None:
        return None


if Held.kind not in ANALYSES:
    register_analysis(Held)


@pytest.fixture
def runner(tmp_path) -> Iterator[JobRunner]:
    RELEASE.clear()
    yield JobRunner(JobStore(tmp_path / "jobs"), pools={"interactive": 2, "long": 1})
    RELEASE.set()


def nine_images() -> Subject:
    return Subject("model", "model", tuple(ImageRef(f"image-{i}", f"{i:040x}") for i in range(9)), tuple(range(9)))


def at_maximum(key: str) -> MethodSpec:
    method = get_method(key)
    return MethodSpec.of(key, {p.name: p.max for p in method.params if p.max is not None and not p.choices
                               and not isinstance(p.default, bool) and p.name != "seed"})


def test_a_locked_session_gets_the_small_budget_and_an_unlocked_one_the_full_one():
    locked = Budget.of(LOCKED_CONFIG, unlocked=False)
    assert locked.locked and locked.job_passes == locked.session_passes == LOCKED_CONFIG.locked_passes == 10_000
    assert "upload password" in locked.describe()
    unlocked = Budget.of(LOCKED_CONFIG, unlocked=True)
    assert not unlocked.locked and unlocked.job_passes == 200_000 and unlocked.session_passes == 400_000
    assert not Budget.of(OperatorConfig(), unlocked=True).locked  # nothing configured: a local run


def test_the_probes_sanity_check_at_the_maxima_is_refused_before_it_starts(runner):
    """The probe: six sanity-check jobs at the parameter maxima over nine samples, each
    inside its registered ranges, 1.58e8 planned passes in all."""
    visitor = Visitor("locked-session", Budget.of(LOCKED_CONFIG, unlocked=False))
    methods = tuple(at_maximum(k) for k in ("integrated_gradients", "smoothgrad", "rise", "lime", "shap_partition"))
    analysis = MetricAnalysis.of("cascading_randomisation", nine_images(), methods)
    assert analysis.planned_passes() > 1_000_000
    with pytest.raises(BudgetExceeded, match="plans .* passes; one run may plan at most 10,000 .* upload password"):
        runner.submit(analysis, None, owner=visitor)
    assert runner.jobs() == []  # nothing queued, nothing computed
    cheap = MetricAnalysis.of("cascading_randomisation", nine_images(), (MethodSpec.of("integrated_gradients"),))
    assert cheap.planned_passes() <= visitor.budget.job_passes  # the registry's defaults stay inside


def test_a_session_cannot_queue_more_than_its_passes_or_its_share_and_the_next_visitor_gets_a_slot(runner):
    budget = Budget(job_passes=1_000, session_passes=2_500, slots_share=0.25)
    first, second = Visitor("first", budget), Visitor("second", budget)
    held = [runner.submit(Held(1_000, seed), None, owner=first) for seed in range(2)]
    with pytest.raises(BudgetExceeded, match="queued or running plan 2,000 model passes"):
        runner.submit(Held(1_000, 2), None, owner=first)
    with pytest.raises(BudgetExceeded, match="one run may plan at most 1,000"):
        runner.submit(Held(1_001, 3), None, owner=first)
    small = [runner.submit(Held(100, seed), None, owner=first) for seed in range(10, 12)]
    assert budget.slots(16) == 4
    with pytest.raises(BudgetExceeded, match="one visitor may hold 4 of the server's 16"):  # 18 presses of Run: 4 held
        for seed in range(20, 38):
            runner.submit(Held(1, seed), None, owner=first)
    mine = held + small
    assert sum(job.planned_passes for job in mine) <= budget.session_passes
    assert all(job.owner == "first" for job in mine)
    other = runner.submit(Held(1_000, 0, ), None, owner=second)  # the same settings: the running job, shared
    assert other is held[0]
    fresh = runner.submit(Held(500, 99), None, owner=second)
    assert fresh.active and fresh.owner == "second"
    RELEASE.set()
    for job in mine + [fresh]:
        assert job.wait(30)
    again = runner.submit(Held(1_000, 50), None, owner=first)  # finished jobs no longer count
    assert again.wait(30)


def test_the_command_line_is_not_budgeted(runner):
    RELEASE.set()
    job = runner.submit(Held(10**9), None)
    assert job.wait(30) and job.planned_passes == 0.0


@pytest.mark.parametrize("key,name", [("smoothgrad", "n_samples"), ("integrated_gradients", "n_steps"),
                                      ("rise", "n_masks"), ("lime", "n_samples")])
def test_parameter_ranges_are_capped_by_cost(key, name):
    method = get_method(key)
    param = next(p for p in method.params if p.name == name)
    defaults = method.resolve_params({})

    def cost(value: Any) -> float:
        return float(method.evals_per_image({**defaults, name: value}, 224))

    assert param_ceiling(param, cost, 10_000, cheap_only=True) == param.default  # locked: the cheap default
    limit = cost(param.default) * 3
    ceiling = param_ceiling(param, cost, limit, cheap_only=False)
    assert param.default < ceiling < param.max
    assert cost(ceiling) <= limit < cost(ceiling + 1)
    assert param_ceiling(param, cost, 10**12, cheap_only=False) is None  # everything fits
    window = next(p for p in get_method("occlusion").params if p.name == "window")  # larger windows cost less
    occlusion = get_method("occlusion")
    defaults = occlusion.resolve_params({})
    assert param_ceiling(window, lambda v: occlusion.evals_per_image({**defaults, "window": v}, 224), 1,
                         cheap_only=True) is None


def test_the_operator_sets_the_budget_by_file_or_environment():
    config = read_operator_config({"explain": {"job_passes": 5, "session_share": "0.5"}},
                                  environ={"EXPLAIN_LOCKED_PASSES": "7", "EXPLAIN_SESSION_PASSES": "9"})
    assert (config.job_passes, config.session_passes, config.locked_passes, config.session_share) == (5, 9, 7, 0.5)
    for bad in ({"job_passes": 0}, {"session_share": 2}, {"session_share": "half"}):
        broken = read_operator_config({"explain": bad}, environ={})
        assert broken.error and Budget.of(broken, unlocked=True).locked  # fails closed: the small budget


def test_one_run_of_the_largest_metric_page_fits_a_visitors_default_slots():
    """Every family of a group page is its own job: with the default share a visitor's one
    Run of the largest page (and the gallery's first-visit job) is admitted whole, and
    other visitors keep slots."""
    from collections import Counter

    from explain.jobs.pools import POOL_SIZES, QUEUE_FACTOR
    from explain.metrics import list_metrics

    pool_limit = POOL_SIZES["interactive"] * QUEUE_FACTOR["interactive"]
    largest = max(Counter(m.page or m.key for m in list_metrics()).values())
    slots = Budget.of(OperatorConfig(), unlocked=True).slots(pool_limit)
    assert largest + 1 <= slots < pool_limit
