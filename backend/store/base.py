"""The one small interface behind which the server keeps what it must not lose.

Two implementations: `SQLiteStore` (the default, one file under MODEL_DIR) and
`MongoStore` (for a deployment that already runs a MongoDB, e.g. FiftyOne's, and would
rather keep one database). The server, the training worker and the export command only
ever see this interface; the plugin never reads it (reviews come back from Label Studio).
"""
from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from .records import Correction, ModelRecord, StoredEmbedding, StoredPrediction, TrainJob

__all__ = ["Store", "new_job"]


def new_job(project: str, trigger: str, params: dict[str, Any] | None = None) -> TrainJob:
    now = time.time()
    return TrainJob(uuid.uuid4().hex[:12], project, "queued", trigger, now, now, params=dict(params or {}))


class Store(abc.ABC):
    """Thread-safe; every method is one short database round trip or a few."""

    spec: str  # what `open_store` was given, so a worker process can open the same store

    # -- predictions --------------------------------------------------------------------
    @abc.abstractmethod
    def record_prediction(self, prediction: StoredPrediction) -> None: ...

    @abc.abstractmethod
    def latest_prediction(self, project: str, task_id: int) -> StoredPrediction | None: ...

    # -- corrections --------------------------------------------------------------------
    def record_annotation(
        self,
        *,
        annotation_id: int,
        project: str | None,
        task_id: int | None,
        image_ref: str | None,
        final: dict[str, list[Any]],
        final_ram_tags: list[dict[str, Any]],
        action: str,
        reviewed_ram: Sequence[int] = (),
        controls: dict[str, dict[str, str]] | None = None,
    ) -> Correction:
        """Insert or update the row of one annotation, joined with our last prediction.

        The join and the normalisation live here so both databases store the same row; each
        backend only writes it (`_upsert_annotation`).
        """
        predicted = self.latest_prediction(project, task_id) if project and task_id is not None else None
        now = time.time()
        fields: dict[str, Any] = {
            "project": project, "task_id": task_id, "image_ref": image_ref, "final": final,
            "final_ram_tags": final_ram_tags, "action": action,
            "reviewed_ram": sorted({int(i) for i in reviewed_ram}), "controls": dict(controls or {}),
        }
        self._upsert_annotation(annotation_id, fields, predicted, now)
        correction = self.get(annotation_id)
        assert correction is not None
        return correction

    @abc.abstractmethod
    def _upsert_annotation(self, annotation_id: int, fields: dict[str, Any], predicted: StoredPrediction | None,
                           now: float) -> None:
        """Write one annotation's row: `fields` as given, live again, updated at `now` (created at `now` when new).

        The prediction's model_version, predicted, ram_tags and image_path come from `predicted`;
        where it is None (or has no image_path) a row's earlier values stay, a new row holds None.
        """

    @abc.abstractmethod
    def mark_deleted(self, annotation_id: int, action: str) -> bool: ...

    @abc.abstractmethod
    def get(self, annotation_id: int) -> Correction | None: ...

    @abc.abstractmethod
    def corrections(self, *, project: str | None = None, include_deleted: bool = False) -> list[Correction]: ...

    @abc.abstractmethod
    def set_image_path(self, annotation_id: int, image_path: str) -> None:
        """Remember where a correction's image was cached (fetched for training)."""

    @abc.abstractmethod
    def corrections_since(self, project: str, since: float) -> int:
        """Live corrections of `project` created or updated after `since` (a timestamp)."""

    # -- training jobs ------------------------------------------------------------------
    @abc.abstractmethod
    def create_job(self, job: TrainJob) -> TrainJob:
        """Insert a queued job; raises `JobConflict` (with that job) if the project has an unfinished one."""

    @abc.abstractmethod
    def update_job(self, job_id: str, **fields: Any) -> TrainJob: ...

    @abc.abstractmethod
    def get_job(self, job_id: str) -> TrainJob | None: ...

    @abc.abstractmethod
    def jobs(self, *, project: str | None = None, limit: int = 100) -> list[TrainJob]:
        """Newest first."""

    # -- model registry index -----------------------------------------------------------
    @abc.abstractmethod
    def record_model(self, record: ModelRecord) -> None: ...

    @abc.abstractmethod
    def models(self, project: str) -> list[ModelRecord]:
        """Oldest first."""

    # -- per-project settings (thresholds, ...) -----------------------------------------
    @abc.abstractmethod
    def project_settings(self, project: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def set_project_settings(self, project: str, settings: dict[str, Any]) -> None: ...

    # -- search indexes (pooled image embeddings, /v1/tag index= and /v1/search) ---------
    @abc.abstractmethod
    def record_embeddings(self, rows: Sequence[StoredEmbedding]) -> None:
        """Insert or replace rows, keyed by (index, model_version, key)."""

    @abc.abstractmethod
    def embedding_chunks(self, index: str, model_version: str, *, chunk_size: int = 1024
                         ) -> Iterator[list[StoredEmbedding]]:
        """The index's rows of one model_version, oldest first, at most `chunk_size` per round trip,
        so a search holds one chunk at a time however large the index grows."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
