"""Session state that follows the user from page to page.

Streamlit deletes a widget's value at the end of any run in which the widget was not
drawn, so a value that must survive a page switch cannot live in the widget alone.
Every such value is *kept*: stored under its own name in the session, written back
into the widget's state before the widget is drawn, and updated from the widget
after. `kept_widget` does the three steps; a kept value that no longer fits the
widget (an option that went away) falls back to the default.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Sequence

import streamlit as st
from streamlit.errors import StreamlitAPIException

KEPT_KEY = "_kept"
APP_RAN_KEY = "_app_navigation_ran"
OPEN_PARAM = "open"  # query parameter: the page app.py opens once its navigation is built
PAGES_DIR = Path(__file__).resolve().parent.parent


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
    """Called first by every page: makes sure the page runs inside app.py's navigation
    (see `run_through_app`) and hands every kept value to the widgets about to be drawn.

    A widget with the same key on another page is another widget: the previous page's
    widget still owns the key, so the next one would start from its default. Each
    kept key's current value (with the change that triggered this run) is taken from
    the widget and put back as plain session state, which the next widget with that
    key starts from."""
    run_through_app()
    kept_values = st.session_state.setdefault(KEPT_KEY, {})
    for name in list(kept_values):
        if name in st.session_state:
            current = st.session_state[name]
            del st.session_state[name]
            st.session_state[name] = kept_values[name] = current


def run_through_app() -> None:
    """A page that runs without app.py (Streamlit serves a deep link such as `/gallery`
    opened before app.py ever ran in the process as a lone page of its `pages/` folder,
    or someone ran the page file itself) goes to app.py, naming itself in the `open`
    query parameter so app.py opens it (`open_requested_page`): from then on the session
    has the navigation and every click reaches its page. Where app.py cannot be reached
    the page says so and stops, rather than drawing widgets whose clicks go nowhere."""
    if st.session_state.get(APP_RAN_KEY):
        return
    try:
        st.switch_page("app.py", query_params={OPEN_PARAM: _running_page()})
    except StreamlitAPIException:
        st.error("This page is part of the dashboard: start it with `streamlit run app.py`.")
        st.stop()


def open_requested_page(pages: Sequence[Any]) -> None:
    """Called by app.py once its navigation is built: open the page a lone page run asked
    for (`run_through_app`), by its URL path."""
    wanted = st.query_params.get(OPEN_PARAM)
    if wanted is None:
        return
    del st.query_params[OPEN_PARAM]
    for page in pages:
        if page.url_path == wanted:
            st.switch_page(page)


def _running_page() -> str:
    """The URL path of the page file being run (its name without `.py`), found on the stack."""
    for frame in inspect.stack(0):
        path = Path(frame.filename).resolve()
        if path.parent == PAGES_DIR:
            return path.stem
    return ""
