"""Which model and thresholds serve each Label Studio project.

The base engine (the server's `--checkpoint`) serves every project that has no model of
its own; projects that differ only in thresholds share it. A project whose registry
(`MODEL_DIR/registry/project-<id>`) has an active fine-tuned version gets that engine,
loaded once and kept in a small LRU with its own batcher; when only its head was
trained, it uses the base model's image encoder (`share_backbone`), so the backbone
stays in memory once.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.concurrency import run_in_threadpool

from ram_model import EngineConfig, TaggingEngine, ThresholdPolicy

from .batcher import AsyncBatcher
from .class_views import ClassView, ClassViews
from .project_thresholds import apply_project_thresholds
from .store import Store

__all__ = ["ProjectModels", "ProjectRuntime", "registry_name", "share_backbone"]

_log = logging.getLogger("backend.project_runtime")


def registry_name(project: str) -> str:
    return f"project-{project}"


@dataclass(frozen=True)
class ProjectRuntime:
    engine: TaggingEngine
    batcher: AsyncBatcher
    ram_thresholds: np.ndarray  # (K,) after the server policy and the project's own thresholds
    registry_version: str | None  # the project's active fine-tuned version, None: the base model
    thresholds_digest: str

    @property
    def key(self) -> str:
        return f"{self.engine.model_version}:{self.thresholds_digest}"


def _digest(thresholds: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(thresholds, dtype=np.float32).tobytes()).hexdigest()[:12]


def share_backbone(engine: TaggingEngine, base: TaggingEngine) -> bool:
    """Point `engine` at the base model's image encoder when their weights are identical
    (a head-mode fine-tune), so the backbone is in memory once. Inference never mutates
    a module, so two engines may run the shared encoder from their own threads."""
    import torch

    mine, theirs = getattr(engine.model, "visual_encoder", None), getattr(base.model, "visual_encoder", None)
    if mine is None or theirs is None or mine is theirs:
        return mine is theirs and mine is not None
    a, b = mine.state_dict(), theirs.state_dict()
    if a.keys() != b.keys():
        return False
    with torch.no_grad():
        for key, tensor in a.items():
            other = b[key]
            if tensor.shape != other.shape or tensor.dtype != other.dtype or tensor.device != other.device:
                return False
            if not torch.equal(tensor, other):
                return False
    engine.model.visual_encoder = theirs
    return True


class ProjectModels:
    def __init__(
        self,
        *,
        base_engine: TaggingEngine,
        base_batcher: AsyncBatcher,
        policy: ThresholdPolicy,
        store: Store,
        registry_root: Path,
        batcher_factory,  # (engine) -> AsyncBatcher, not started
        max_engines: int = 2,
    ) -> None:
        self.base_engine = base_engine
        self.base_batcher = base_batcher
        self.policy = policy
        self.store = store
        self.registry_root = registry_root
        self._batcher_factory = batcher_factory
        self._max_engines = max_engines
        self._engines: OrderedDict[str, tuple[TaggingEngine, AsyncBatcher]] = OrderedDict()
        self._active: dict[str, str | None] = {}  # project -> registry version (cached)
        self._settings: dict[str, dict[str, Any]] = {}  # project -> store settings (cached)
        self._lock = threading.Lock()
        self._load_lock = asyncio.Lock()
        self.class_views = ClassViews(batcher_factory)

    # -- what serves a project ------------------------------------------------------

    def registry(self):
        from ram_model.registry import ModelRegistry

        return ModelRegistry(self.registry_root)

    def active_version(self, project: str) -> str | None:
        with self._lock:
            if project in self._active:
                return self._active[project]
        version = None
        if self.project_settings(project).get("serve_base"):
            pass  # rolled back past the first fine-tune: the base model serves
        elif (self.registry_root / registry_name(project)).is_dir():
            try:
                active = self.registry().active(registry_name(project))
                version = active.version if active is not None else None
            except ImportError:  # the registry is not installed: every project uses the base model
                version = None
        with self._lock:
            self._active[project] = version
        return version

    def project_settings(self, project: str | None) -> dict[str, Any]:
        if project is None:
            return {}
        with self._lock:
            cached = self._settings.get(project)
        if cached is None:
            cached = self.store.project_settings(project)
            with self._lock:
                self._settings[project] = cached
        return cached

    def invalidate(self, project: str) -> None:
        """Forget what was cached for `project` (after a promotion, rollback or threshold change)."""
        with self._lock:
            self._active.pop(project, None)
            self._settings.pop(project, None)

    def _runtime(self, engine: TaggingEngine, batcher: AsyncBatcher, project: str | None,
                 version: str | None) -> ProjectRuntime:
        thresholds = self.policy.resolve(engine.vocab)
        settings = self.project_settings(project)
        if settings:
            thresholds = apply_project_thresholds(thresholds, engine.vocab.names, settings)
        return ProjectRuntime(engine, batcher, thresholds, version, _digest(thresholds))

    def base_runtime(self, project: str | None = None) -> ProjectRuntime:
        """The base model with the project's thresholds (sync: for webhooks and threads)."""
        return self._runtime(self.base_engine, self.base_batcher, project, None)

    async def runtime(self, project: str | None) -> ProjectRuntime:
        if project is None:
            return self.base_runtime(None)
        version = await run_in_threadpool(self.active_version, project)
        if version is None:
            return await run_in_threadpool(self.base_runtime, project)
        engine, batcher = await self._engine_for(project, version)
        return await run_in_threadpool(self._runtime, engine, batcher, project, version)

    async def computing(self, runtime: ProjectRuntime, classes: Sequence[int],
                        open_set: Sequence[str] = ()) -> ClassView:
        """What computes `classes` (indices of `runtime.engine.vocab`, then of `open_set`) for a
        prediction: a restricted view of the runtime's engine, or the engine itself for most classes."""
        return await self.class_views.view(runtime.engine, runtime.batcher, classes, open_set)

    async def _engine_for(self, project: str, version: str) -> tuple[TaggingEngine, AsyncBatcher]:
        key = f"{registry_name(project)}@{version}"
        async with self._load_lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
            base = self.base_engine.config
            config: EngineConfig = dataclasses.replace(
                base, checkpoint=f"registry://{self.registry_root}/{key}", swin_config=None, head_config=None,
                tag_list=None, tag_list_zh=None, thresholds=None,
            )
            _log.info("project %s: loading its model %s", project, version)
            engine = await run_in_threadpool(TaggingEngine.from_config, config)
            if await run_in_threadpool(share_backbone, engine, self.base_engine):
                _log.info("project %s: %s shares the base model's image encoder (only its head differs)",
                          project, version)
            batcher = self._batcher_factory(engine)
            await batcher.start()
            self._engines[key] = (engine, batcher)
            while len(self._engines) > self._max_engines:
                _, (old_engine, old) = self._engines.popitem(last=False)
                await self.class_views.drop(old_engine)
                await old.stop()
            return engine, batcher

    async def aclose(self) -> None:
        await self.class_views.aclose()
        for _, batcher in self._engines.values():
            await batcher.stop()
        self._engines.clear()
