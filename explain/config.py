"""Operator configuration of a hosted instance: who may upload models and data, whether
TorchScript files are accepted, which server folders may be read, and size limits.

Read from the `[explain]` table of `.streamlit/secrets.toml` and from environment
variables (`EXPLAIN_*`, which win over the file). Plain data in, plain data out: the
Streamlit side (`pages/ui/access.py`) passes `st.secrets` and `st.user` in.

Uploads are open when nothing is configured (a local run). A misconfigured instance
(unknown mode, password mode without a password) fails closed: nobody may upload.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

AUTH_MODES = ("none", "password", "login")
CACHE_ENV = "EXPLAIN_CACHE_DIR"
TRUE_WORDS = {"1", "true", "yes", "on"}
DOWNLOADS_ENV = "EXPLAIN_ALLOW_DOWNLOADS"


class ConfigError(ValueError):
    """The operator's configuration cannot be used; the message says which setting."""


@dataclass(frozen=True)
class OperatorConfig:
    """What the operator allows. `auth`: "none" (anyone may upload), "password"
    (a shared password unlocks uploads for a session) or "login" (Streamlit's built-in
    OIDC login, optionally restricted to `allowed_emails`). `error` is set when the
    settings were inconsistent; uploads are then refused for everybody.

    The compute budget of a visitor's session, in model passes (`explain.jobs.budget`):
    `job_passes` per job, `session_passes` queued or running at once, `locked_passes`
    for both when the session is locked (a password configured and not entered), and
    `session_share` of the interactive slots one session may hold. The defaults keep a
    2-core host usable: 200,000 passes of the default model are about an hour there."""

    auth: str = "none"
    upload_password: str | None = None
    allowed_emails: tuple[str, ...] = ()
    allow_torchscript: bool = False
    data_roots: tuple[Path, ...] = ()
    max_model_mb: int = 600
    max_dataset_mb: int = 512
    max_dataset_images: int = 2000
    job_passes: int = 200_000
    session_passes: int = 400_000
    locked_passes: int = 10_000
    session_share: float = 0.625  # 10 of 16: one Run of the largest group page (9 families) plus the gallery's job
    allow_downloads: bool = False
    error: str | None = None

    @property
    def uploads_restricted(self) -> bool:
        return self.auth != "none" or self.error is not None


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in TRUE_WORDS


def _as_list(value: Any, separator: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(separator) if v.strip()]
    return [str(v).strip() for v in value or [] if str(v).strip()]


def _as_positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, not {number}")
    return number


def _as_share(value: Any) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"session_share must be a number, not {value!r}") from None
    if not 0 < share <= 1:
        raise ConfigError(f"session_share must lie in (0, 1], not {share}")
    return share


ENV_NAMES = {
    "auth": "EXPLAIN_AUTH",
    "upload_password": "EXPLAIN_UPLOAD_PASSWORD",
    "allowed_emails": "EXPLAIN_ALLOWED_EMAILS",
    "allow_torchscript": "EXPLAIN_ALLOW_TORCHSCRIPT",
    "data_roots": "EXPLAIN_DATA_ROOTS",
    "max_model_mb": "EXPLAIN_MAX_MODEL_MB",
    "max_dataset_mb": "EXPLAIN_MAX_DATASET_MB",
    "max_dataset_images": "EXPLAIN_MAX_DATASET_IMAGES",
    "job_passes": "EXPLAIN_JOB_PASSES",
    "session_passes": "EXPLAIN_SESSION_PASSES",
    "locked_passes": "EXPLAIN_LOCKED_PASSES",
    "session_share": "EXPLAIN_SESSION_SHARE",
    "allow_downloads": DOWNLOADS_ENV,
}


def read_operator_config(
    secrets: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> OperatorConfig:
    """Settings from the secrets' `[explain]` table, overridden by `EXPLAIN_*` variables.

    Lists in environment variables: e-mails separated by commas, folders by
    `os.pathsep`. A password alone implies `auth = "password"`.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = dict((secrets or {}).get("explain", {}) or {})
    for key, env in ENV_NAMES.items():
        if environ.get(env, "") != "":
            raw[key] = environ[env]
    unknown = sorted(set(raw) - set(ENV_NAMES))
    try:
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown} in [explain]; known: {sorted(ENV_NAMES)}")
        password = str(raw["upload_password"]) if raw.get("upload_password") not in (None, "") else None
        auth = str(raw.get("auth") or ("password" if password else "none")).strip().lower()
        if auth not in AUTH_MODES:
            raise ConfigError(f"auth must be one of {AUTH_MODES}, not {auth!r}")
        if auth == "password" and not password:
            raise ConfigError("auth = 'password' needs upload_password (or EXPLAIN_UPLOAD_PASSWORD)")
        if auth == "login" and "auth" not in (secrets or {}):
            raise ConfigError(
                "auth = 'login' needs an [auth] section in .streamlit/secrets.toml (Streamlit's OIDC login)"
            )
        return OperatorConfig(
            auth=auth,
            upload_password=password,
            allowed_emails=tuple(e.lower() for e in _as_list(raw.get("allowed_emails"), ",")),
            allow_torchscript=_as_bool(raw.get("allow_torchscript", False)),
            allow_downloads=_as_bool(raw.get("allow_downloads", False)),
            data_roots=tuple(Path(p).expanduser().resolve() for p in _as_list(raw.get("data_roots"), os.pathsep)),
            max_model_mb=_as_positive_int("max_model_mb", raw.get("max_model_mb", OperatorConfig.max_model_mb)),
            max_dataset_mb=_as_positive_int("max_dataset_mb", raw.get("max_dataset_mb", OperatorConfig.max_dataset_mb)),
            max_dataset_images=_as_positive_int(
                "max_dataset_images", raw.get("max_dataset_images", OperatorConfig.max_dataset_images)
            ),
            job_passes=_as_positive_int("job_passes", raw.get("job_passes", OperatorConfig.job_passes)),
            session_passes=_as_positive_int("session_passes", raw.get("session_passes", OperatorConfig.session_passes)),
            locked_passes=_as_positive_int("locked_passes", raw.get("locked_passes", OperatorConfig.locked_passes)),
            session_share=_as_share(raw.get("session_share", OperatorConfig.session_share)),
        )
    except ConfigError as exc:
        return OperatorConfig(
            auth="locked", error=f"The operator configuration is invalid ({exc}); uploads are disabled."
        )


def password_matches(config: OperatorConfig, attempt: str) -> bool:
    """Constant-time comparison with the configured upload password."""
    if not config.upload_password or not attempt:
        return False
    return hmac.compare_digest(config.upload_password.encode(), attempt.encode())


def may_upload(config: OperatorConfig, *, unlocked_by_password: bool, logged_in: bool, email: str | None) -> bool:
    """Whether this session may upload models and data under the operator's rules."""
    if config.error is not None:
        return False
    if config.auth == "none":
        return True
    if config.auth == "password":
        return unlocked_by_password
    if config.auth == "login":
        if not logged_in:
            return False
        return not config.allowed_emails or (email or "").lower() in config.allowed_emails
    return False


def cache_dir() -> Path:
    """Where trained weights, job results and ROAR results live: `$EXPLAIN_CACHE_DIR`,
    else the repository's git-ignored `data/` folder."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path(__file__).resolve().parent.parent / "data"


def downloads_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether model weights may be fetched from the internet (torchvision's zoo, timm's and
    the Hugging Face hub): `EXPLAIN_ALLOW_DOWNLOADS` (the app's `allow_downloads` setting;
    the CLIs set it from `--allow-downloads` / `--offline`). Off when unset."""
    environ = os.environ if environ is None else environ
    return _as_bool(environ.get(DOWNLOADS_ENV, "") or False)
