"""Durable record of what RAM predicted and what annotators finally chose.

Every `/predict` answer and every annotation that arrives by webhook lands here, in
one SQLite file under MODEL_DIR, so turning corrections into finetuning data never
needs Label Studio again. Deleting an annotation in Label Studio only marks the row:
a correction, once made, is never lost by this store.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Correction", "CorrectionsStore", "StoredPrediction"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    project TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    image_ref TEXT,
    predicted TEXT NOT NULL,          -- JSON: {control: [{"label", "value", "score"}]}
    ram_tags TEXT NOT NULL,           -- JSON: [{"index", "name", "score"}] over threshold
    created_at REAL NOT NULL,
    PRIMARY KEY (project, task_id, model_version)
);
CREATE TABLE IF NOT EXISTS corrections (
    annotation_id INTEGER PRIMARY KEY,
    project TEXT,
    task_id INTEGER,
    image_ref TEXT,
    model_version TEXT,
    predicted TEXT,                   -- JSON, copied from predictions when known
    ram_tags TEXT,                    -- JSON, RAM tags over threshold when predicted
    final TEXT NOT NULL,              -- JSON: {control: [label values as annotated]}
    final_ram_tags TEXT NOT NULL,     -- JSON: [{"label", "ram_index", "ram_name"}]
    action TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS corrections_task ON corrections (project, task_id);
"""


@dataclass(frozen=True)
class StoredPrediction:
    project: str
    task_id: int
    model_version: str
    image_ref: str | None
    predicted: dict[str, list[dict[str, Any]]]
    ram_tags: list[dict[str, Any]]


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


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class CorrectionsStore:
    """Thread-safe SQLite store (WAL, one connection, one lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CorrectionsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- predictions ----------------------------------------------------------------

    def record_prediction(self, prediction: StoredPrediction) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    prediction.project,
                    prediction.task_id,
                    prediction.model_version,
                    prediction.image_ref,
                    json.dumps(prediction.predicted),
                    json.dumps(prediction.ram_tags),
                    time.time(),
                ),
            )

    def latest_prediction(self, project: str, task_id: int) -> StoredPrediction | None:
        with self._lock:
            row = self._db.execute(
                "SELECT project, task_id, model_version, image_ref, predicted, ram_tags FROM predictions "
                "WHERE project = ? AND task_id = ? ORDER BY created_at DESC LIMIT 1",
                (project, task_id),
            ).fetchone()
        if row is None:
            return None
        return StoredPrediction(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]))

    # -- corrections ----------------------------------------------------------------

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
    ) -> Correction:
        """Insert or update the row of one annotation, joined with our last prediction."""
        predicted = self.latest_prediction(project, task_id) if project and task_id is not None else None
        now = time.time()
        with self._lock:
            self._db.execute(
                """
                INSERT INTO corrections (annotation_id, project, task_id, image_ref, model_version, predicted,
                    ram_tags, final, final_ram_tags, action, deleted, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
                ON CONFLICT (annotation_id) DO UPDATE SET
                    project = excluded.project, task_id = excluded.task_id, image_ref = excluded.image_ref,
                    model_version = COALESCE(excluded.model_version, corrections.model_version),
                    predicted = COALESCE(excluded.predicted, corrections.predicted),
                    ram_tags = COALESCE(excluded.ram_tags, corrections.ram_tags),
                    final = excluded.final, final_ram_tags = excluded.final_ram_tags,
                    action = excluded.action, deleted = 0, updated_at = excluded.updated_at
                """,
                (
                    annotation_id,
                    project,
                    task_id,
                    image_ref,
                    predicted.model_version if predicted else None,
                    json.dumps(predicted.predicted) if predicted else None,
                    json.dumps(predicted.ram_tags) if predicted else None,
                    json.dumps(final),
                    json.dumps(final_ram_tags),
                    action,
                    now,
                    now,
                ),
            )
        correction = self.get(annotation_id)
        assert correction is not None
        return correction

    def mark_deleted(self, annotation_id: int, action: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE corrections SET deleted = 1, action = ?, updated_at = ? WHERE annotation_id = ?",
                (action, time.time(), annotation_id),
            )
        return cursor.rowcount > 0

    def get(self, annotation_id: int) -> Correction | None:
        rows = list(self._select("WHERE annotation_id = ?", (annotation_id,)))
        return rows[0] if rows else None

    def corrections(self, *, project: str | None = None, include_deleted: bool = False) -> list[Correction]:
        clauses, params = [], []
        if project is not None:
            clauses.append("project = ?")
            params.append(project)
        if not include_deleted:
            clauses.append("deleted = 0")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return list(self._select(where + " ORDER BY annotation_id", tuple(params)))

    def counts(self) -> dict[str, int]:
        with self._lock:
            predictions = self._db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
            live = self._db.execute("SELECT COUNT(*) FROM corrections WHERE deleted = 0").fetchone()[0]
            deleted = self._db.execute("SELECT COUNT(*) FROM corrections WHERE deleted = 1").fetchone()[0]
        return {"predictions": predictions, "corrections": live, "deleted": deleted}

    def _select(self, tail: str, params: tuple) -> Iterator[Correction]:
        with self._lock:
            rows = self._db.execute(
                "SELECT annotation_id, project, task_id, image_ref, model_version, predicted, ram_tags, final, "
                "final_ram_tags, action, deleted, created_at, updated_at FROM corrections " + tail,
                params,
            ).fetchall()
        for r in rows:
            yield Correction(
                r[0], r[1], r[2], r[3], r[4], _loads(r[5]), _loads(r[6]), json.loads(r[7]), json.loads(r[8]),
                r[9], bool(r[10]), r[11], r[12],
            )
