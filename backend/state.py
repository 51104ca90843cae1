"""What the app holds for its lifetime, and the typed dependency routes read it by."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from fastapi import Request

from ram_model import TaggingEngine, ThresholdPolicy

from .batcher import AsyncBatcher
from .ls_project import ProjectModel, build_project_model
from .media import LabelStudioAccess, MediaFetcher
from .project_runtime import ProjectModels, ProjectRuntime
from .settings import Settings
from .store import Store

__all__ = ["AppState", "Counters", "get_state"]

_PROJECT_CACHE_SIZE = 64
_REMEMBERED_PROJECTS = 4096  # project ids whose config and /setup access are kept (oldest forgotten)


@dataclass
class Counters:
    """Monotonic counts for /metrics (Prometheus text)."""

    predict_requests: int = 0
    predicted_tasks: int = 0
    failed_tasks: int = 0
    native_requests: int = 0
    native_images: int = 0
    webhooks: int = 0
    corrections_stored: int = 0


@dataclass
class AppState:
    settings: Settings
    engine: TaggingEngine
    policy: ThresholdPolicy
    ram_thresholds: np.ndarray  # (K,) after the policy's overrides
    batcher: AsyncBatcher
    fetcher: MediaFetcher
    store: Store
    models: ProjectModels
    training: object | None = None  # backend.training.TrainingManager
    grounding: object | None = None  # backend.grounding.GroundingService (--detector)
    file_synonyms: Mapping[str, Sequence[str]] | None = None
    counters: Counters = field(default_factory=Counters)
    _projects: OrderedDict[tuple[str, str], ProjectModel] = field(default_factory=OrderedDict)
    _configs: OrderedDict[str, str] = field(default_factory=OrderedDict)  # project id -> last label config
    _access: OrderedDict[str, LabelStudioAccess] = field(default_factory=OrderedDict)  # project id -> from /setup
    # (Label Studio URL, project id) -> model_version its connection was last renamed to (ls_version_sync)
    version_sync: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def project_model(
        self, label_config: str | None, project_id: str | None = None, runtime: ProjectRuntime | None = None
    ) -> ProjectModel:
        """The bound config, cached by its text and what serves the project (model and
        thresholds); remembers the config for the project's webhooks."""
        if not label_config and project_id is not None:
            label_config = self._configs.get(project_id)
        runtime = runtime or self.models.base_runtime(project_id)
        key = (runtime.key, label_config or "")
        with self._lock:
            cached = self._projects.get(key)
            if cached is not None:
                self._projects.move_to_end(key)
        if cached is None:
            vocab = runtime.engine.vocab
            cached = build_project_model(
                label_config,
                ram_names=vocab.names,
                ram_names_zh=vocab.names_zh,
                ram_thresholds=runtime.ram_thresholds,
                engine_version=runtime.engine.model_version,
                file_synonyms=self.file_synonyms,
                top_k=self.policy.top_k,
                limits=self.settings.label_config_limits,
                detector_version=self.region_source_version(),
            )
            with self._lock:
                self._projects[key] = cached
                while len(self._projects) > _PROJECT_CACHE_SIZE:
                    self._projects.popitem(last=False)
        if project_id is not None and label_config:
            _remember(self._configs, project_id, label_config)
        return cached

    def region_source_version(self) -> str | None:
        """What fills region controls: the detector's version, "+ram-evidence" with evidence boxes on; None: nothing."""
        parts = [getattr(self.grounding, "model_version", None),
                 "ram-evidence" if self.settings.evidence_boxes else None]
        return "+".join(p for p in parts if p) or None

    def known_config(self, project_id: str) -> str | None:
        """The last label config Label Studio sent for this project (from /setup, /predict or a webhook)."""
        return self._configs.get(project_id)

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
        configured = self.settings.label_studio_url
        if configured:
            return LabelStudioAccess(configured, self.settings.label_studio_api_key or from_setup.token)
        return from_setup


def _remember(table: OrderedDict, key: str, value: object) -> None:
    """Keep per-project state for the newest projects only: ids come from requests, so
    an unbounded table would grow with whatever a client makes up."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > _REMEMBERED_PROJECTS:
        table.popitem(last=False)


def get_state(request: Request) -> AppState:
    return request.app.state.ram
