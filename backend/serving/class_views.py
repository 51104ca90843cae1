"""Engines that compute only the RAM classes a project's labels map onto.

RAM's tagging head has no attention between class queries, so an engine restricted to
a project's classes gives exactly the full model's scores for them, faster (issue 13).
A view shares its engine's model, forward lock and decode pool; each gets its own
batcher, so requests of one project coalesce with each other and never with another
project's class set. Views are kept in a small LRU, like fine-tuned engines.

What goes back to the routes is always (K,) over the serving engine's vocabulary, with
NaN for classes that were not computed (NaN never fires: `fired_indices`), so every
threshold array and stored class index keeps meaning what it meant.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ram_model import TaggingEngine
from ram_model.model.restrict import expand_probs, worth_restricting

from .batcher import AsyncBatcher

__all__ = ["ClassView", "ClassViews"]

_log = logging.getLogger("backend.serving.class_views")


@dataclass(frozen=True)
class ClassView:
    """What computes a project's classes, and how its rows map back onto the vocabulary."""

    engine: TaggingEngine
    batcher: AsyncBatcher
    columns: np.ndarray | None  # class indices of the serving engine's vocabulary; None: all
    size: int  # K of the serving engine's vocabulary

    def expand(self, probs: np.ndarray) -> np.ndarray:
        """(len(columns),) -> (K,), NaN where a class was not computed."""
        return probs if self.columns is None else expand_probs(probs, self.columns, self.size)


class ClassViews:
    """Restricted views of the serving engines, one batcher each, least recently used dropped."""

    def __init__(self, batcher_factory: Callable[[TaggingEngine], AsyncBatcher], max_views: int = 8) -> None:
        self._batcher_factory = batcher_factory
        self._max_views = max_views
        self._views: OrderedDict[tuple[int, tuple[str, ...], tuple[str, ...]], ClassView] = OrderedDict()
        self._lock = asyncio.Lock()

    def views(self) -> list[ClassView]:
        return list(self._views.values())

    async def view(self, engine: TaggingEngine, batcher: AsyncBatcher, classes: Sequence[int],
                   open_set: Sequence[str] = ()) -> ClassView:
        """The view computing `classes` (indices of `engine.vocab`); the engine itself when
        they are most of its vocabulary (`ram_model.model.restrict.FULL_VOCABULARY_SHARE`).
        Indices K, K+1, ... name the project's `open_set` classes (labelstudio.open_set_labels)."""
        size = len(engine.vocab)
        if not open_set and not worth_restricting(classes, size):
            return ClassView(engine, batcher, None, size)
        columns = np.array(sorted(set(classes)), dtype=np.int64)
        names = tuple(engine.vocab.names[i] if i < size else open_set[i - size] for i in columns)
        key = (id(engine), names, tuple(open_set))
        async with self._lock:
            found = self._views.get(key)
            if found is not None and found.engine.model is engine.model:
                self._views.move_to_end(key)
                return found
            if found is not None:  # an evicted engine's id, reused
                await self._views.pop(key).batcher.stop()
            restricted = engine.open_set_view(names) if open_set else engine.restricted(names)
            view = ClassView(restricted, self._batcher_factory(restricted), columns, size + len(open_set))
            await view.batcher.start()
            _log.info("computing %d of %d classes for a project (%s)", len(names), size, engine.model_version)
            self._views[key] = view
            while len(self._views) > self._max_views:
                _, old = self._views.popitem(last=False)
                await old.batcher.stop()
            return view

    async def drop(self, engine: TaggingEngine) -> None:
        """Forget the views of an engine that is no longer served (an evicted fine-tune)."""
        async with self._lock:
            for key in [k for k, v in self._views.items() if v.engine.model is engine.model]:
                await self._views.pop(key).batcher.stop()

    async def aclose(self) -> None:
        async with self._lock:
            for view in self._views.values():
                await view.batcher.stop()
            self._views.clear()
