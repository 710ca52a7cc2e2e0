"""Errors a person can act on when a model cannot be used; messages are meant for them."""


class ModelUnavailableError(RuntimeError):
    """The model cannot be loaded here (unknown name, weights missing offline). The
    message may be shown to anyone; `operator_hint` says what the operator can do about
    it (server paths), for the server log and the command line only."""

    def __init__(self, message: str, operator_hint: str = "") -> None:
        super().__init__(message)
        self.operator_hint = operator_hint


class CustomModelError(ValueError):
    """An uploaded model or class-names file cannot be used; the message says why."""
