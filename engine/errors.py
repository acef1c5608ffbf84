"""Errors the engine reports to people: each message says what happened and what to do."""

from __future__ import annotations


class EngineError(Exception):
    """A failure with a message fit for the user; ``field`` names the offending input."""

    status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(EngineError):
    status = 404


class ModelLoadError(EngineError):
    pass


class JobCancelled(Exception):
    """Raised inside the sampling loop when the running job is cancelled."""
