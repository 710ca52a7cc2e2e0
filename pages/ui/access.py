"""Who may upload models and data (and start ROAR runs): the operator's rules and the
password or login gate. Wrong passwords are counted per client address across the
process (`explain.guesses`), not per session."""

from __future__ import annotations

import math
import uuid
from typing import Any

import streamlit as st

from explain.config import OperatorConfig, may_upload, password_matches, read_operator_config
from explain.guesses import PASSWORD_GUESSES
from explain.jobs import Budget, Visitor

UNLOCKED_KEY = "uploads_unlocked"
VISITOR_KEY = "_visitor_id"
LAST_FAILURE_KEY = "upload_password_last_failure"


def _secrets() -> dict[str, Any]:
    """`st.secrets` as a dict; empty when the app has no secrets file."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # also StreamlitSecretNotFoundError: no or unreadable secrets.toml
        return {}


def operator_config() -> OperatorConfig:
    """The operator's rules (`[explain]` in secrets.toml, `EXPLAIN_*` variables)."""
    return read_operator_config(_secrets())


def client_address() -> str:
    """The key wrong guesses are counted under: the connection's address. Streamlit
    gives none on localhost (and outside a real server connection, e.g. in AppTest):
    those share the key "local". Behind a reverse proxy every visitor has the proxy's
    address: one shared count."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "local"


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
        st.info(
            "Uploading models and data is locked on this instance. Enter the upload password to unlock it for this "
            "session."
        )
        client = client_address()
        wait = PASSWORD_GUESSES.wait_seconds(client)
        if wait > 0:
            st.error(f"Too many wrong passwords from your address; try again in {math.ceil(wait)} s.")
            return False
        attempt = st.text_input("Upload password", type="password", key="upload_password_attempt")
        if attempt:
            if attempt != st.session_state.get(LAST_FAILURE_KEY):  # a rerun with the same text is not a new guess
                if password_matches(config, attempt):
                    PASSWORD_GUESSES.succeeded(client)
                    st.session_state[UNLOCKED_KEY] = True
                    return True
                PASSWORD_GUESSES.failed(client)
                st.session_state[LAST_FAILURE_KEY] = attempt
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


def budget(config: OperatorConfig | None = None) -> Budget:
    """This session's compute budget (a small one while it is locked)."""
    config = config or operator_config()
    return Budget.of(config, unlocked=uploads_allowed(config))


def visitor() -> Visitor:
    """This session as the job runner budgets it: a random id kept in the session, and its budget."""
    session = st.session_state.setdefault(VISITOR_KEY, uuid.uuid4().hex)
    return Visitor(session, budget())
