"""Analyses as jobs, seen from a page: start one on Run, follow its progress (done/total,
rate, ETA, what it is doing now) with a Stop button, draw its partial results as they
come, and list the session's runs so any can be reopened.

Pages hold only the analysis they show (its frozen settings) in the session; the job
and its result live in the process-wide runner and on disk, so a page switch, a
reload or an app restart finds them again without recomputing.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import streamlit as st

from explain.jobs import CANCELLED, DONE, FAILED, RUNNING, Job, JobLimitError, default_runner
from explain.jobs.budget import format_passes
from pages.ui import access
from pages.ui.text import plain

RUNS_KEY = "_runs"
POLL_SECONDS = 1.0  # the progress bar of a running job
RESULT_REDRAWS_PER_SECOND = 2.0  # partial results redrawn per second, all sessions of the server together


def shown_key(page: str) -> str:
    return f"_analysis:{page}"


def submit(page: str, analysis: Any, inputs: Any) -> Job | None:
    """Start (or find) the job for `analysis` and show it on `page`; None (with the
    reason shown) when the server has too many jobs of this kind already, or the run
    would take this session over its budget."""
    try:
        job = default_runner().submit(analysis, inputs, owner=access.visitor())
    except (JobLimitError, ValueError) as exc:  # no room, over the budget, or settings that cannot be planned
        st.error(plain(exc))
        return None
    show_analysis(page, analysis)
    return job


def show_analysis(page: str, analysis: Any) -> None:
    """Make `analysis` the one `page` shows, and list it among the session's runs."""
    st.session_state[shown_key(page)] = analysis
    runs = [r for r in st.session_state.setdefault(RUNS_KEY, []) if r["key"] != analysis.key]
    runs.insert(
        0, {"key": analysis.key, "page": page, "title": analysis.title, "analysis": analysis, "opened": time.time()}
    )
    st.session_state[RUNS_KEY] = runs[:50]


def shown(page: str) -> tuple[Any | None, Job | None]:
    """The analysis `page` shows and its job (running, or finished in memory or on disk)."""
    analysis = st.session_state.get(shown_key(page))
    if analysis is None:
        return None, None
    return analysis, default_runner().find(analysis)


def progress_block(job: Job, stoppable: bool = True) -> None:
    """Progress bar with what is being done, rate and ETA; a Stop button (when `stoppable`)."""
    p = job.progress
    left, right = st.columns([6, 1])
    text = p.describe() if job.state != "waiting" else (p.label or "waiting")
    left.progress(p.fraction, text=text)
    if stoppable and right.button("Stop", key=f"stop:{job.key}", icon=":material/stop_circle:"):
        job.cancel()


def live_result(page: str, render: Callable[[Any, Job], None], placeholder: Callable[[], None] = lambda: None,
                stoppable: bool = True) -> None:
    """The shown analysis's progress and (partial or final) result, refreshed while its
    job runs without rerunning the rest of the page; `placeholder()` draws what to show
    before the job's first partial result.

    Two fragments: the progress bar every `POLL_SECONDS` (a few small elements), and the
    partial result every `result_poll_seconds()` and only while the job runs (a queued
    job has none). When the job starts or ends the page is redrawn once; `render` draws
    buttons (Add to report...) only when `job.active` is false, in that last redraw,
    which does not poll, so a click is never lost to the next poll."""
    analysis, job = shown(page)
    if job is None:
        return
    running = job.active
    started = job.state == RUNNING
    if running:

        @st.fragment(run_every=POLL_SECONDS)
        def progress() -> None:
            current = default_runner().find(analysis)
            if current is None:
                return
            if not current.active or (current.state == RUNNING) != started:
                st.rerun()  # it ended (buttons drawn only now) or started (its result polls from now on)
            progress_block(current, stoppable)

        progress()

    @st.fragment(run_every=result_poll_seconds() if started else None)
    def result() -> None:
        current = default_runner().find(analysis)
        if current is None:
            return
        if not running:
            if current.active:  # started again since this page's run (another session's Run)
                progress_block(current, stoppable)
            elif current.state == FAILED:
                st.error(f"The run failed: {plain(current.error)}")
            elif current.state == CANCELLED:
                st.warning(current.error or "The run was stopped; finished parts are stored. Press Run to go on.")
        shown_result = current.result if current.state == DONE else current.partial
        if shown_result is not None:
            render(shown_result, current)
        else:
            placeholder()

    result()


def result_poll_seconds() -> float:
    """Seconds between two redraws of a running job's partial result: twice the progress
    poll, longer while many jobs are active, so that all sessions together redraw about
    `RESULT_REDRAWS_PER_SECOND` results a second. Every redraw is a script run holding the
    GIL and a burst of messages through the server's one event loop; with 8 sessions
    following jobs on 2 cores, once a second each kept the health endpoint seconds late
    (issue 24, break 5)."""
    active = sum(1 for job in default_runner().jobs() if job.active)
    return max(2 * POLL_SECONDS, active / RESULT_REDRAWS_PER_SECOND)


def runs_panel(page: str) -> None:
    """The session's runs on `page`, newest first, each with its state and an Open
    button that shows it again."""
    runs = [r for r in st.session_state.get(RUNS_KEY, []) if r["page"] == page]
    if not runs:
        return
    with st.expander(f"This session's runs ({len(runs)})"):
        runner = default_runner()
        for run in runs:
            job = runner.find(run["analysis"])
            state = job.state if job is not None else "not started"
            detail = job.progress.describe() if job is not None and job.active else state
            left, right = st.columns([5, 1])
            left.markdown(f"**{plain(run['title'])}** · {plain(detail)}")
            if right.button("Open", key=f"open:{page}:{run['key']}"):
                show_analysis(page, run["analysis"])
                st.rerun()


def budget_note(pending: Any) -> None:
    """What Run would plan against this session's budget, and how to get more (locked sessions)."""
    budget = access.budget()
    try:
        planned = pending.planned_passes()
    except (NotImplementedError, ValueError):  # an analysis without a plan, or settings the run itself refuses
        return
    over = planned > budget.job_passes
    text = f"This run plans {format_passes(planned)} model passes. {budget.describe()}"
    (st.warning if over else st.caption)(text)


def follow(page: str, pending: Any, inputs: Any, run: bool, draw: Callable[[Any, Job], None],
           placeholder: Callable[[], None], stoppable: bool = True) -> None:
    """The flow every analysis page shares: Run starts the pending analysis (settings
    as the form last submitted them); a result stored earlier for exactly these
    settings is shown without Run; the shown analysis is drawn live while it matches
    the settings, else `placeholder()` says what Run would compute. `stoppable=False`
    hides the Stop button (a visitor who may not start such jobs may not stop them)."""
    budget_note(pending)
    if run:
        submit(page, pending, inputs)
    elif default_runner().find(pending) is not None:
        show_analysis(page, pending)  # computed before: this session, another one, or before a restart
    analysis, _ = shown(page)
    if analysis is not None and analysis.key == pending.key:
        live_result(page, draw, placeholder, stoppable)
    else:
        if analysis is not None:
            st.caption("The settings changed since the last run: press Run to compute them.")
        placeholder()
    runs_panel(page)
