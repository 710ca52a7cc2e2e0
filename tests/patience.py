"""How long a test waits for something: the work's time on an idle machine times the
slowdown a loaded machine may cost, so that a wait only ends a test when something hangs.

The suite shares machines (load 12-19 on 2 cores was measured: everything ~10x slower,
Python start-ups and `import torch` more); `EXPLAIN_TEST_SLOWDOWN` raises the factor on
slower machines still. No test asserts on how long something took: speed lives in bench/.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pytest

SLOWDOWN = float(os.environ.get("EXPLAIN_TEST_SLOWDOWN", "30"))
FLOOR_SECONDS = 60.0


def generous(idle_seconds: float) -> float:
    """A timeout for work that takes `idle_seconds` on an idle machine."""
    return max(FLOOR_SECONDS, idle_seconds * SLOWDOWN)


SLOW_METHODS = {"scorecam", "xrai", "shap_gradient", "shap_partition"}  # over 20 s per test on a loaded machine


def method_params(keys: Iterable[str]) -> list[Any]:
    """Method keys for `pytest.mark.parametrize`, the slow methods marked `slow`."""
    return [pytest.param(key, marks=pytest.mark.slow) if key in SLOW_METHODS else key for key in keys]
