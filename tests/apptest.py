"""Driving pages whose analyses run as background jobs through Streamlit's AppTest."""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest

from explain.jobs import default_runner
from tests.patience import generous


def wait_for_jobs(timeout: float | None = None) -> None:
    """Wait until no job of this process's runner is active (each at most `timeout` s,
    default: generous for a minute of work)."""
    timeout = generous(60) if timeout is None else timeout
    for job in default_runner().jobs():
        if job.active:
            assert job.wait(timeout), f"job {job.title} did not finish within {timeout} s"


def run_until_idle(at: AppTest, timeout: float | None = None) -> AppTest:
    """Run the page, let the jobs it started finish, and run it again to draw their results."""
    at.run()
    assert not at.exception, at.exception
    wait_for_jobs(timeout)
    return at.run()


def shown_result(at: AppTest, page: str) -> Any:
    """The finished result of the analysis `page` shows in this session."""
    analysis = at.session_state[f"_analysis:{page}"]
    job = default_runner().find(analysis)
    assert job is not None and job.state == "done", None if job is None else (job.state, job.error)
    return job.result


def click(at: AppTest, label: str) -> AppTest:
    """Click the (form submit) button with this label."""
    [button for button in at.get("button") if getattr(button, "label", "") == label][0].click()
    return at
