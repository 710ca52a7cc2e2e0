"""Errors a person can act on when a model cannot be used; messages are meant for them."""


class ModelUnavailableError(RuntimeError):
    """The model cannot be loaded here (unknown name, weights missing offline)."""


class CustomModelError(ValueError):
    """An uploaded model or class-names file cannot be used; the message says why."""
