"""Errors the plugin raises on purpose; operators show their message, the CLI prints it."""
from __future__ import annotations

__all__ = ["PluginInputError", "RunConflictError"]


class PluginInputError(ValueError):
    """The request cannot be carried out as given (missing field, wrong label type, empty view)."""


class RunConflictError(PluginInputError):
    """Writing would overwrite or mix with results the user did not ask to replace."""
