"""Issue 14 in the app (AppTest): password guesses limited across sessions, no uploader
and no ROAR run in a locked session, zoo models marked without server paths, bad
preprocessing refused with a message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from streamlit.testing.v1 import AppTest

from explain.jobs import pools as pools_module
from explain.models.zoo import zoo_weight_path

from .test_byom_app import errors, model_page
from tests.patience import generous

APP = str(Path(__file__).resolve().parents[1] / "app.py")
LOCKED = {"explain": {"upload_password": "s3cret"}}
PAGES = ["pages/model_data.py", "pages/gallery.py", "pages/roar.py", "pages/reports.py"]


def fresh_session(page: str, secrets: dict | None = LOCKED) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=generous(30))
    if secrets:
        at.secrets.update(secrets)
    at.session_state["samples"] = ["coffee"]
    at.session_state["methods"] = ["saliency"]
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_new_sessions_do_not_bring_new_password_guesses():
    first = model_page(secrets=LOCKED)
    for i in range(5):
        first.text_input(key="upload_password_attempt").set_value(f"guess-{i}").run()
    assert "Wrong password" in errors(first)
    second = model_page(secrets=LOCKED)  # a new browser session from the same address
    assert re.search(r"Too many wrong passwords from your address; try again in (2\d|30) s", errors(second))
    assert not [t for t in second.text_input if t.key == "upload_password_attempt"]
    assert not list(second.get("file_uploader"))


def test_the_right_password_still_unlocks_before_the_limit_and_clears_the_count():
    from explain.guesses import PASSWORD_GUESSES

    at = model_page(secrets=LOCKED)
    for i in range(4):
        at.text_input(key="upload_password_attempt").set_value(f"guess-{i}").run()
    at.text_input(key="upload_password_attempt").set_value("s3cret").run()
    assert not at.error and PASSWORD_GUESSES.wait_seconds("local") == 0
    assert list(at.get("file_uploader"))


@pytest.mark.parametrize("page", PAGES)
def test_a_locked_session_gets_no_uploader_on_any_page(page):
    at = fresh_session(page)
    if page == "pages/model_data.py":
        for source in ("Offline default", "torchvision zoo", "timm", "Hugging Face", "Upload a model"):
            at.radio(key="byom_source").set_value(source).run()
            assert not list(at.get("file_uploader")), source
    assert not list(at.get("file_uploader"))
    if page in ("pages/model_data.py", "pages/gallery.py"):  # pages with the image picker say why
        assert any("locked" in c.value for c in at.sidebar.caption)


def run_button(at: AppTest):
    return [b for b in at.get("button") if getattr(b, "label", "") == "Run (retrains the network)"][0]


def test_roar_runs_need_the_upload_password():
    at = fresh_session("pages/roar.py")
    assert run_button(at).disabled
    assert any("locked like uploads" in c.value for c in at.caption)
    at.switch_page("pages/model_data.py").run()
    at.text_input(key="upload_password_attempt").set_value("s3cret").run()
    at.switch_page("pages/roar.py").run()
    assert not run_button(at).disabled


def test_roar_start_beyond_the_cap_gets_the_message(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLAIN_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(pools_module.QUEUE_FACTOR, "long", 0)  # no room for one more long job
    at = fresh_session("pages/roar.py", secrets=None)
    run_button(at).click().run()
    assert not at.exception
    shown = errors(at).replace("\\", "")  # messages are shown as escaped plain text
    assert "long jobs are already running or waiting on this server (at most 0)" in shown
    assert "_analysis:roar" not in at.session_state


def test_zoo_models_with_weights_are_marked_and_visitors_see_no_server_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = zoo_weight_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    at = model_page()
    at.radio(key="byom_source").set_value("torchvision zoo").run()
    assert any("1 of 80 zoo models have their weights installed" in c.value for c in at.caption)
    options = at.selectbox(key="byom_zoo_name").options
    assert "✓ resnet18" in options and "resnet50 (weights not installed)" in options
    assert at.selectbox(key="byom_zoo_name").value == "resnet18"  # an installed one is offered first
    at.selectbox(key="byom_zoo_name").set_value("resnet50").run()
    at.button(key="byom_use_zoo").click().run()
    message = errors(at)
    assert "resnet50" in message and "not installed on this server" in message and "operator" in message
    assert str(tmp_path) not in message and "/" not in message


def test_non_finite_std_in_the_preprocessing_form_gets_a_message():
    at = model_page()
    std = [t for t in at.text_input if t.key and t.key.startswith("byom_std:")][0]
    std.set_value("nan")
    [b for b in at.get("button") if getattr(b, "label", "") == "Apply"][0].click().run()
    assert not at.exception and "finite" in errors(at)
    assert at.session_state["custom_bundle"] is None if "custom_bundle" in at.session_state else True
