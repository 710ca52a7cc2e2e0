"""Who may upload models and data: the operator's rules and the password or login gate."""

from __future__ import annotations

from typing import Any

import streamlit as st

from explain.config import OperatorConfig, may_upload, password_matches, read_operator_config

UNLOCKED_KEY = "uploads_unlocked"
MAX_PASSWORD_FAILURES = 5


def _secrets() -> dict[str, Any]:
    """`st.secrets` as a dict; empty when the app has no secrets file."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # also StreamlitSecretNotFoundError: no or unreadable secrets.toml
        return {}


def operator_config() -> OperatorConfig:
    """The operator's rules (`[explain]` in secrets.toml, `EXPLAIN_*` variables)."""
    return read_operator_config(_secrets())


def _user_login() -> tuple[bool, str | None]:
    user = st.user
    return bool(user.get("is_logged_in", False)), user.get("email")


def uploads_allowed(config: OperatorConfig | None = None) -> bool:
    """Whether this session may upload models and data (and read server folders)."""
    config = config or operator_config()
    logged_in, email = _user_login() if config.auth == "login" else (False, None)
    return may_upload(
        config, unlocked_by_password=bool(st.session_state.get(UNLOCKED_KEY)), logged_in=logged_in, email=email
    )


def upload_gate(config: OperatorConfig) -> bool:
    """True when the session may upload; else shows what unlocks uploads (password box or
    login button) and returns False. Saved reports stay readable without any of this."""
    if uploads_allowed(config):
        return True
    if config.error:
        st.error(config.error)
        return False
    if config.auth == "password":
        st.info("Uploading models and data is locked on this instance. Enter the upload password to unlock it for this session.")
        failures = st.session_state.get("upload_password_failures", 0)
        if failures >= MAX_PASSWORD_FAILURES:
            st.error("Too many wrong passwords in this session; open the app again to retry.")
            return False
        attempt = st.text_input("Upload password", type="password", key="upload_password_attempt")
        if attempt:
            if password_matches(config, attempt):
                st.session_state[UNLOCKED_KEY] = True
                return True
            if attempt != st.session_state.get("upload_password_last_failure"):  # count each new guess once
                st.session_state["upload_password_failures"] = failures + 1
                st.session_state["upload_password_last_failure"] = attempt
            st.error("Wrong password.")
        return False
    logged_in, email = _user_login()
    if not logged_in:
        st.info("Uploading models and data needs a login on this instance.")
        st.button("Log in", key="login_button", on_click=st.login)
    else:
        st.error(f"{email or 'This account'} may not upload models or data here; ask the operator.")
        st.button("Log out", key="logout_button", on_click=st.logout)
    return False
