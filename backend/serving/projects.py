"""The one owner of a Label Studio project on the server: which model, thresholds and class
view serve it, its bound label config, and where its images come from.

A route asks `Projects.serve(project, label_config)` and gets everything a prediction
needs; nothing else keeps per-project state (the bound configs, the configs remembered
for webhooks and the `/setup` access used to live on the app state).

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
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.concurrency import run_in_threadpool

from ram_model import EngineConfig, TaggingEngine, ThresholdPolicy
from ram_model.inference.thresholds import thresholds_digest

from ..labelstudio.project import ProjectModel
from ..store import Store
from ..training.params import registry_name
from .batcher import AsyncBatcher
from .class_views import ClassView, ClassViews
from .label_binding import LabelBinding
from .media import LabelStudioAccess
from .model_fallback import LoadFailures, active_pointer, fallback_chain
from .project_thresholds import apply_project_thresholds

__all__ = ["ProjectRuntime", "Projects", "ServedProject", "share_backbone"]

_log = logging.getLogger("backend.serving.projects")

_PROJECT_CACHE_SIZE = 64  # bound label configs kept (by config text and what serves it)
_REMEMBERED_PROJECTS = 4096  # project ids whose config and /setup access are kept (oldest forgotten)


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


@dataclass(frozen=True)
class ServedProject:
    """What serves one request of a project: the model and thresholds, and the bound label config."""

    runtime: ProjectRuntime
    model: ProjectModel


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


class Projects:
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
        binding: LabelBinding = LabelBinding(),
        label_studio_url: str | None = None,
        label_studio_api_key: str | None = None,
        engine_loader=TaggingEngine.from_config,  # (EngineConfig) -> engine; Ray Serve's keeps models remote
    ) -> None:
        self._engine_loader = engine_loader
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
        self.load_failures = LoadFailures()  # versions that failed to load, not retried per request
        self.binding = binding
        self.label_studio_url = label_studio_url
        self.label_studio_api_key = label_studio_api_key
        self._bound: OrderedDict[tuple[str, str], ProjectModel] = OrderedDict()
        self._configs: OrderedDict[str, str] = OrderedDict()  # project id -> last label config
        self._access: OrderedDict[str, LabelStudioAccess] = OrderedDict()  # project id -> from /setup

    async def serve(self, project: str | None, label_config: str | None) -> ServedProject:
        """The model, thresholds and bound label config serving one request of `project`."""
        runtime = await self.runtime(project)
        model = await run_in_threadpool(self.project_model, label_config, project, runtime)
        return ServedProject(runtime, model)

    # -- the project's label config -------------------------------------------------

    def project_model(
        self, label_config: str | None, project_id: str | None = None, runtime: ProjectRuntime | None = None
    ) -> ProjectModel:
        """The bound config, cached by its text and what serves the project (model and
        thresholds); remembers the config for the project's webhooks."""
        if not label_config and project_id is not None:
            label_config = self._configs.get(project_id)
        runtime = runtime or self.base_runtime(project_id)
        key = (runtime.key, label_config or "")
        with self._lock:
            cached = self._bound.get(key)
            if cached is not None:
                self._bound.move_to_end(key)
        if cached is None:
            cached = self.binding.bind(label_config, runtime.engine, runtime.ram_thresholds, self.policy.top_k)
            with self._lock:
                self._bound[key] = cached
                while len(self._bound) > _PROJECT_CACHE_SIZE:
                    self._bound.popitem(last=False)
        if project_id is not None and label_config:
            _remember(self._configs, project_id, label_config)
        return cached

    def open_set_classes(self) -> list[str]:
        """Open-set classes served: the base engine's own (--open-set) and those of the bound labels."""
        with self._lock:
            bound = list(self._bound.values())
        names = [*self.base_engine.open_set_classes, *(n for p in bound for n in p.open_set_classes)]
        return list(dict.fromkeys(names))

    def known_config(self, project_id: str) -> str | None:
        """The last label config Label Studio sent for this project (from /setup, /predict or a webhook)."""
        return self._configs.get(project_id)

    # -- where the project's images come from ---------------------------------------

    def remember_setup(self, project_id: str | None, hostname: str | None, access_token: str | None) -> None:
        """Keep what a `/setup` call said, the hostname and token as one pair."""
        if project_id is None:
            return
        access = LabelStudioAccess(hostname.rstrip("/") if hostname else None, access_token)
        access.origin  # noqa: B018 - parse now, so a bad hostname is the /setup caller's 400
        _remember(self._access, project_id, access)

    def label_studio(self, project_id: str | None) -> LabelStudioAccess:
        """Where this project's images come from, and the key to read them with.

        A configured LABEL_STUDIO_URL wins, and a configured key goes only there
        (`Settings` refuses a key without a URL), so no `/setup` call can repoint it.
        A token that `/setup` sent may be used with the configured URL, which is
        harmless: it goes to the Label Studio the operator named. With no URL
        configured, the hostname and token of one `/setup` call are used together.
        """
        from_setup = self._access.get(project_id or "", LabelStudioAccess(None, None))
        if self.label_studio_url:
            return LabelStudioAccess(self.label_studio_url, self.label_studio_api_key or from_setup.token)
        return from_setup

    # -- what serves a project ------------------------------------------------------

    def registry(self):
        from ram_model.weights.registry import ModelRegistry

        return ModelRegistry(self.registry_root)

    def active_version(self, project: str) -> str | None:
        with self._lock:
            if project in self._active:
                return self._active[project]
        version = None
        if self.project_settings(project).get("serve_base"):
            pass  # rolled back past the first fine-tune: the base model serves
        else:  # the pointer only: a damaged version's files are read (and fail) once, in `runtime`
            version = active_pointer(self.registry_root / registry_name(project))
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
        self.load_failures.forget(project)

    def _runtime(self, engine: TaggingEngine, batcher: AsyncBatcher, project: str | None,
                 version: str | None) -> ProjectRuntime:
        thresholds = self.policy.resolve(engine.vocab)
        settings = self.project_settings(project)
        if settings:
            thresholds = apply_project_thresholds(thresholds, engine.vocab.names, settings)
        return ProjectRuntime(engine, batcher, thresholds, version, thresholds_digest(thresholds))

    def base_runtime(self, project: str | None = None) -> ProjectRuntime:
        """The base model with the project's thresholds (sync: for webhooks and threads)."""
        return self._runtime(self.base_engine, self.base_batcher, project, None)

    async def runtime(self, project: str | None) -> ProjectRuntime:
        if project is None:
            return self.base_runtime(None)
        version = await run_in_threadpool(self.active_version, project)
        if version is None:
            return await run_in_threadpool(self.base_runtime, project)
        chain = await run_in_threadpool(fallback_chain, self.registry(), registry_name(project), version)
        for candidate in chain:
            if self.load_failures.failed(project, candidate):
                continue
            try:
                engine, batcher = await self._engine_for(project, candidate)
            except Exception as exc:  # noqa: BLE001 - any damaged version falls back, remembered
                self.load_failures.note(project, candidate, exc)
                continue
            return await run_in_threadpool(self._runtime, engine, batcher, project, candidate)
        return await run_in_threadpool(self.base_runtime, project)

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
            engine = await run_in_threadpool(self._engine_loader, config)
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


def _remember(table: OrderedDict, key: str, value: object) -> None:
    """Keep per-project state for the newest projects only: ids come from requests, so
    an unbounded table would grow with whatever a client makes up."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > _REMEMBERED_PROJECTS:
        table.popitem(last=False)
