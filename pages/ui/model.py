"""The session's model: the shared named model (one per process), the session's own
uploaded or re-configured model, the shared attribution cache, and the sidebar card."""

from __future__ import annotations

import streamlit as st

import explain
from explain.methods.cache import default_cache

CUSTOM_BUNDLE_KEY = "custom_bundle"
CUSTOM_BASE_KEY = "custom_base"  # the custom model as loaded, before preprocessing / CAM-layer settings


@st.cache_resource(show_spinner="Loading the model...")
def shared_bundle(name: str) -> explain.ModelBundle:
    """One model per process and name, shared by all sessions (methods lock it)."""
    return explain.load_model(name)


def shared_cache() -> explain.AttributionCache:
    """The process-wide attribution cache (the one analyses and the CLI use too)."""
    return default_cache()


def named_bundle() -> explain.ModelBundle:
    """The shared model the session chose by name (the offline default unless changed)."""
    return shared_bundle(st.session_state.get("model_name", explain.DEFAULT_MODEL))


def current_bundle() -> explain.ModelBundle:
    """The session's own model if it uploaded one, else the shared named model."""
    custom = st.session_state.get(CUSTOM_BUNDLE_KEY)
    if custom is not None:
        return custom
    return named_bundle()


def model_sidebar(bundle: explain.ModelBundle) -> None:
    with st.sidebar.container(border=True):
        st.markdown(f"**Model** `{bundle.name}`")
        st.caption(
            f"Device: {bundle.device} · {bundle.num_parameters / 1e6:.2f} M parameters · {bundle.num_classes} classes"
        )
        st.caption(f"Weights: {bundle.weights}")


def use_custom_model(base: explain.ModelBundle | None, applied: explain.ModelBundle | None = None) -> None:
    """Make `applied` (default: `base`) this session's model; `base=None` goes back to
    the shared named model."""
    st.session_state[CUSTOM_BASE_KEY] = base
    st.session_state[CUSTOM_BUNDLE_KEY] = None if base is None else (applied if applied is not None else base)


def base_bundle() -> explain.ModelBundle:
    """The session's model before preprocessing / CAM-layer settings were applied."""
    base = st.session_state.get(CUSTOM_BASE_KEY)
    if base is not None and st.session_state.get(CUSTOM_BUNDLE_KEY) is not None:
        return base
    return named_bundle()
