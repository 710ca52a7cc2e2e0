"""Shared fixtures: the default model (loaded once per session) and small synthetic models."""

from __future__ import annotations

import os
import tempfile

import pytest

import explain


def pytest_configure(config: pytest.Config) -> None:
    # Job results, trained weights and maps of the test run live in a fresh folder, never in data/.
    os.environ.setdefault("EXPLAIN_CACHE_DIR", tempfile.mkdtemp(prefix="explain-tests-"))
    # Nothing downloads in the tests: the loaders and the CLIs (whose default is to allow downloads) see "off".
    os.environ["EXPLAIN_ALLOW_DOWNLOADS"] = "0"
    os.environ["HF_HUB_OFFLINE"] = "1"
    config.addinivalue_line("markers", "slow: takes more than a few seconds (still runs in CI)")
    config.addinivalue_line("markers", "browser: drives headless Chromium against a running app")
    config.addinivalue_line("markers", "ray: starts a local Ray cluster (Ray is in requirements.txt: never skipped)")
    # Captum announces the hooks it sets (and removes in its own `finally`).
    config.addinivalue_line("filterwarnings", "ignore:Setting backward hooks on ReLU:UserWarning")
    config.addinivalue_line("filterwarnings", "ignore:Setting forward, backward hooks:UserWarning")


@pytest.fixture(autouse=True)
def fresh_password_guess_counts():
    """Wrong upload-password guesses are counted per client address across the process,
    and every AppTest session is the same address ("local"): each test starts clean."""
    from explain.guesses import PASSWORD_GUESSES

    PASSWORD_GUESSES.clear()
    yield
    PASSWORD_GUESSES.clear()


@pytest.fixture(scope="session")
def default_bundle() -> explain.ModelBundle:
    return explain.load_model(explain.DEFAULT_MODEL, device="cpu")
