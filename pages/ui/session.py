"""Session state that follows the user from page to page, and app-level navigation
housekeeping."""

from __future__ import annotations

import streamlit as st

# Sidebar and page widgets whose values follow the user from page to page.
CARRIED_WIDGET_KEYS = ("samples", "uploaded", "class_mode", "class_choice", "methods",
                       "report_title", "report_author", "report_description", "report_order")
CARRIED_WIDGET_PREFIXES = ("param:",)


APP_RAN_KEY = "_app_navigation_ran"


def before_page_run() -> None:
    """Called by app.py before every page run: marks the session as navigated by app.py
    and keeps widget values when the user switches pages.

    Streamlit forgets a widget's value at the end of a run in which that widget (same
    key, same page) was not drawn; writing the value back as plain session state
    makes the same-key widget on the next page start from it."""
    st.session_state[APP_RAN_KEY] = True
    for key in list(st.session_state):
        if isinstance(key, str) and (key in CARRIED_WIDGET_KEYS or key.startswith(CARRIED_WIDGET_PREFIXES)):
            st.session_state[key] = st.session_state[key]


def leave_legacy_pages_mode() -> None:
    """Streamlit runs a deep link (`/gallery`) opened before app.py ever ran in this
    process in its legacy `pages/` mode: the page alone, without app.py's navigation.
    Switch the process to `st.navigation` and, in a session that app.py has not run
    yet, rerun through app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get(APP_RAN_KEY):
            st.rerun()


def remember(name: str, key: tuple, compute, keep: int = 4):
    """Result of `compute()` for `key`, kept in the session (last `keep` keys per `name`)
    so that a rerun with the same settings (a widget elsewhere changed) costs nothing."""
    store = st.session_state.setdefault(f"_remember:{name}", {})
    if key not in store:
        store[key] = compute()
        while len(store) > keep:
            store.pop(next(iter(store)))
    return store[key]


def remember_with_progress(name: str, key: tuple, label: str, unit: str, compute):
    """`compute(progress)` once per `key` (see `remember`), with a progress bar fed by its
    `progress(done, total)` calls; a ValueError/RuntimeError is shown and stops the page."""

    def run():
        bar = st.progress(0.0, text=f"{label}...")
        try:
            return compute(lambda done, total: bar.progress(done / total, text=f"{label}: {done}/{total} {unit}"))
        finally:
            bar.empty()

    try:
        return remember(name, key, run)
    except (ValueError, RuntimeError) as exc:
        st.error(f"{label} failed: {exc}")
        st.stop()
