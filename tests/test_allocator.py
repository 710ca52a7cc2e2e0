"""glibc's allocator thresholds are raised at import, overridably, and never break anything."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from explain import allocator


def test_default_environment_asks_for_the_default_threshold():
    assert allocator.requested_threshold({}) == allocator.DEFAULT_THRESHOLD


@pytest.mark.parametrize("value", ["0", "off", "OFF", " false "])
def test_the_variable_switches_it_off(value):
    assert allocator.requested_threshold({allocator.ENV_VAR: value}) is None
    assert allocator.tune({allocator.ENV_VAR: value}) is None


def test_the_variable_sets_bytes_clipped_to_what_mallopt_takes():
    assert allocator.requested_threshold({allocator.ENV_VAR: "268435456"}) == 2**28
    assert allocator.requested_threshold({allocator.ENV_VAR: "1e12"}) == 2**31 - 1


def test_a_bad_value_is_ignored_with_a_message(capsys):
    assert allocator.requested_threshold({allocator.ENV_VAR: "lots"}) is None
    assert "EXPLAIN_MALLOC_THRESHOLD" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"])
def test_glibcs_own_settings_win(name):
    assert allocator.requested_threshold({name: "1"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"), reason="glibc only")
def test_importing_explain_applied_it_here():
    import os

    if allocator.requested_threshold(os.environ) is None:
        pytest.skip("switched off in this environment")
    assert allocator.applied == allocator.requested_threshold(os.environ)
