"""The session's model: the shared named model (one per process), the session's own
uploaded or re-configured model, the shared attribution cache, and the sidebar card."""

from __future__ import annotations

import streamlit as st

import explain
from explain.methods.cache import default_cache

CUSTOM_BUNDLE_KEY = "custom_bundle"
CUSTOM_BASE_KEY = "custom_base"  # the custom model as loaded, before preprocessing / CAM-layer settings


@st.cache_resource(show_spinner="Loading the model...")
def shared_bundle(name: str, allow_downloads: bool = False) -> explain.ModelBundle:
    """One model per process and reference, shared by all sessions (methods lock it);
    weights are downloaded only where the operator allows it."""
    return explain.load_model(name, allow_downloads=allow_downloads)


def use_named_model(name: str, allow_downloads: bool = False) -> None:
    """Make the shared model `name` this session's model."""
    st.session_state["model_name"] = name
    st.session_state["model_downloads"] = allow_downloads
    use_custom_model(None)


def shared_cache() -> explain.AttributionCache:
    """The process-wide attribution cache (the one analyses and the CLI use too)."""
    return default_cache()


def named_bundle() -> explain.ModelBundle:
    """The shared model the session chose by name (the offline default unless changed)."""
    name = st.session_state.get("model_name", explain.DEFAULT_MODEL)
    return shared_bundle(name, st.session_state.get("model_downloads", False))


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
        st.caption(model_card_line(bundle))


def model_card_line(bundle: explain.ModelBundle) -> str:
    """Source, weights digest, preprocessing and class count in one line."""
    digest = f"sha256 {bundle.weights_sha256[:16]}…" if bundle.weights_sha256 else "no file digest"
    mean = ", ".join(f"{m:g}" for m in bundle.mean)
    std = ", ".join(f"{s:g}" for s in bundle.std)
    return (f"Source: {bundle.source or 'in-process'} · {digest} · resize {bundle.resize_size}, "
            f"crop {bundle.input_size}, mean ({mean}), std ({std}) · {bundle.num_classes} classes")


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
