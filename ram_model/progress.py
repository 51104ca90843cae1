"""The one progress callback every long job of ram-annotate takes: `progress(done, total)`.

`total` is None when the input has no length (a generator of images). The engine, the
plugin's jobs and the command lines all call it the same way, so one tqdm bar or one
FiftyOne progress reporter serves them all. (Fine-tuning also reports richer events,
epoch and metrics, through its own `TrainingEventFn`.)
"""
from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressFn"]

ProgressFn = Callable[[int, "int | None"], None]
