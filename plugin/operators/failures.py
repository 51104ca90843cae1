"""Known failures shown as one line in the App's result panel; the traceback goes to the log.

FiftyOne 1.22 turns an exception raised from `execute` into an execution result whose
`error` is the whole `traceback.format_exc()`, and the App shows that collapsed, with
the one line a user needs at its bottom. For the errors we raise on purpose (bad input,
a missing checkpoint, a Label Studio refusal) the traceback says nothing to the user,
so an immediate run answers `{"error": message}` and its output form is that message
first. A delegated run still fails (so the Runs list marks it failed), but with the
short message only. Anything else is a bug and keeps FiftyOne's own traceback.
"""
from __future__ import annotations

import functools
import logging
from typing import Any

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.errors import PluginInputError
from plugin.jobs.export_commit import ExportBusyError
from ram_client.client import RamServerError
from ram_client.labelstudio.client import LabelStudioError
from ram_model import RamModelError

__all__ = ["KNOWN_ERRORS", "OperatorFailure", "error_output", "one_line", "reports_failures"]

_log = logging.getLogger("plugin.operators")

# Raised on purpose with a message for the user: bad input, a model that cannot load, a
# Label Studio or ram-annotate server that refuses or cannot be reached, a busy export.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (RamModelError, PluginInputError, LabelStudioError, ValueError,
                                                 RamServerError, ExportBusyError)
ERROR_KEY = "error"


class OperatorFailure(RuntimeError):
    """A delegated run's failure, carrying only the message (no chained cause)."""


def one_line(exc: BaseException) -> str:
    """The message a user reads: the exception's first non-empty line, or its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def error_output(ctx: foo.ExecutionContext) -> types.Property | None:
    """The result panel of a run that answered an error, or None when it did not."""
    results = ctx.results
    if not isinstance(results, dict) or not isinstance(results.get(ERROR_KEY), str):
        return None
    outputs = types.Object()
    outputs.view(ERROR_KEY, types.Error(label=results[ERROR_KEY],
                                        description="Details are in the FiftyOne server's log."))
    return types.Property(outputs, view=types.View(label="The run stopped"))


def reports_failures(cls: type[foo.Operator]) -> type[foo.Operator]:
    """Wrap an operator class's `execute` and `resolve_output` as the module docstring says."""
    execute = cls.execute
    resolve_output = cls.resolve_output

    @functools.wraps(execute)
    def guarded_execute(self, ctx: foo.ExecutionContext) -> Any:
        try:
            return execute(self, ctx)
        except KNOWN_ERRORS as exc:
            message = one_line(exc)
            _log.warning("%s failed: %s", self.config.name, message, exc_info=True)
            if ctx.delegated:
                raise OperatorFailure(message) from None
            return {ERROR_KEY: message}

    @functools.wraps(resolve_output)
    def guarded_resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        shown = error_output(ctx)
        return shown if shown is not None else resolve_output(self, ctx)

    cls.execute = guarded_execute
    cls.resolve_output = guarded_resolve_output
    return cls
