"""The rows the server keeps: predictions, corrections, training jobs, models, project settings.

Plain frozen dataclasses, so the SQLite and the MongoDB store hand back exactly the same
objects and callers never learn which database answered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIVE_JOB_STATES",
    "FINAL_JOB_STATES",
    "JOB_STATES",
    "Correction",
    "JobConflict",
    "ModelRecord",
    "StoredEmbedding",
    "StoredPrediction",
    "TrainJob",
]

JOB_STATES = ("queued", "running", "succeeded", "failed", "promoted", "rejected")
ACTIVE_JOB_STATES = ("queued", "running", "succeeded")  # succeeded: registered, promotion not decided yet
FINAL_JOB_STATES = ("failed", "promoted", "rejected")


class JobConflict(Exception):
    """A project already has a job that has not finished; carries that job."""

    def __init__(self, job: TrainJob) -> None:
        super().__init__(f"project {job.project} already has training job {job.id} ({job.state})")
        self.job = job


@dataclass(frozen=True)
class StoredPrediction:
    project: str
    task_id: int
    model_version: str
    image_ref: str | None
    predicted: dict[str, list[dict[str, Any]]]
    ram_tags: list[dict[str, Any]]
    image_path: str | None = None  # the bytes as fetched, cached under MODEL_DIR/images


@dataclass(frozen=True)
class Correction:
    annotation_id: int
    project: str | None
    task_id: int | None
    image_ref: str | None
    model_version: str | None
    predicted: dict[str, list[dict[str, Any]]] | None
    ram_tags: list[dict[str, Any]] | None
    final: dict[str, list[Any]]
    final_ram_tags: list[dict[str, Any]]
    action: str
    deleted: bool
    created_at: float
    updated_at: float
    image_path: str | None = None  # cached image, when the server fetched it for a prediction
    reviewed_ram: list[int] = field(default_factory=list)  # RAM classes the annotator could choose
    # control name -> {"type": "choices" | "taxonomy", "to_name": the object it labels}, so an
    # export writes the annotation back as Label Studio had it (empty for rows stored before)
    controls: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainJob:
    id: str
    project: str
    state: str
    trigger: str
    created_at: float
    updated_at: float
    progress: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    message: str | None = None
    model_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    started_at: float | None = None  # the worker got a training slot and was started
    finished_at: float | None = None  # the worker exited (the slot was given back)
    heartbeat_at: float | None = None  # the worker's last sign of life (backend.training.worker)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_JOB_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "project": self.project, "state": self.state, "trigger": self.trigger,
            "created_at": self.created_at, "updated_at": self.updated_at, "progress": self.progress,
            "metrics": self.metrics, "message": self.message, "model_version": self.model_version,
            "params": self.params, "started_at": self.started_at, "finished_at": self.finished_at,
            "heartbeat_at": self.heartbeat_at,
        }


@dataclass(frozen=True)
class ModelRecord:
    """One registered version of a project's model, as the registry holds it (an index for readers)."""

    project: str
    version: str
    model_version: str
    path: str
    metrics: dict[str, Any]
    job_id: str | None
    promoted: bool
    reason: str
    created_at: float


@dataclass(frozen=True)
class StoredEmbedding:
    """One image's pooled embedding in a named search index (`/v1/tag` with `index=`).

    `key` is the image's reference (its allowed path) or `sha256:<hex>` of an upload, so
    tagging the same image again under the same model_version replaces its row. `vector`
    is the float32 embedding as the engine gave it, little-endian bytes (`numpy.frombuffer`).
    """

    index: str
    key: str
    model_version: str
    source: str
    vector: bytes
    random_weights: bool = False
