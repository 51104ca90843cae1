"""What the app holds for its lifetime, and the typed dependency routes read it by."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from fastapi import Request

from ram_model import TaggingEngine, ThresholdPolicy

from .labelstudio.version_sync import VersionSync
from .serving.batcher import AsyncBatcher
from .serving.media import MediaFetcher
from .serving.projects import Projects
from .settings import Settings
from .store import Store

__all__ = ["AppState", "Counters", "get_state"]


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
    projects: Projects  # everything per project: model, thresholds, class views, label config, access
    version_sync: VersionSync  # project model version and connection title = ours (labelstudio.version_sync)
    training: object | None = None  # backend.training.manager.TrainingManager
    grounding: object | None = None  # backend.serving.grounding.GroundingService (--detector)
    counters: Counters = field(default_factory=Counters)


def get_state(request: Request) -> AppState:
    return request.app.state.ram
