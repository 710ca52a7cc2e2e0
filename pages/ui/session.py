"""Session state that follows the user from page to page.

Streamlit deletes a widget's value at the end of any run in which the widget was not
drawn, so a value that must survive a page switch cannot live in the widget alone.
Every such value is *kept*: stored under its own name in the session, written back
into the widget's state before the widget is drawn, and updated from the widget
after. `kept_widget` does the three steps; a kept value that no longer fits the
widget (an option that went away) falls back to the default.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import streamlit as st

KEPT_KEY = "_kept"
APP_RAN_KEY = "_app_navigation_ran"


def kept(name: str, default: Any = None) -> Any:
    """The kept value of `name`, else the value its widget holds now, else `default`."""
    found = st.session_state.setdefault(KEPT_KEY, {})
    if name in found:
        return found[name]
    return st.session_state[name] if name in st.session_state else default


def keep(name: str, value: Any) -> None:
    st.session_state.setdefault(KEPT_KEY, {})[name] = value


def kept_widget(widget: Callable[..., Any], label: str, key: str, default: Any, *,
                options: Sequence[Any] | None = None, **kwargs: Any) -> Any:
    """Draw `widget(label, options?, key=key, **kwargs)` starting from the kept value
    of `key` (else `default`) and keep what it returns. `options`, when the widget
    has them, filter a kept value that is no longer offered."""
    if key not in st.session_state:
        value = kept(key, default)
        if options is not None:
            offered = list(options)
            if isinstance(value, (list, tuple)):
                value = [v for v in value if v in offered]
            elif value not in offered:
                value = default
        st.session_state[key] = value
    args = (label,) if options is None else (label, list(options))
    value = widget(*args, key=key, **kwargs)
    keep(key, value)
    return value


def before_page_run() -> None:
    """Called by app.py before every page run: marks the session as navigated by app.py."""
    st.session_state[APP_RAN_KEY] = True


def start_page() -> None:
    """Called first by every page: leaves Streamlit's legacy pages mode (see below) and
    hands every kept value to the widgets about to be drawn.

    A widget with the same key on another page is another widget: the previous page's
    widget still owns the key, so the next one would start from its default. Each
    kept key's current value (with the change that triggered this run) is taken from
    the widget and put back as plain session state, which the next widget with that
    key starts from."""
    leave_legacy_pages_mode()
    kept_values = st.session_state.setdefault(KEPT_KEY, {})
    for name in list(kept_values):
        if name in st.session_state:
            current = st.session_state[name]
            del st.session_state[name]
            st.session_state[name] = kept_values[name] = current


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
