"""The default store: one SQLite file under MODEL_DIR (WAL, so the training worker
process can write job progress while the server reads)."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .base import Store
from .records import Correction, JobConflict, ModelRecord, StoredEmbedding, StoredPrediction, TrainJob

__all__ = ["SQLiteStore"]

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
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    state TEXT NOT NULL,
    active INTEGER NOT NULL,
    body TEXT NOT NULL,               -- JSON of the whole TrainJob
    created_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs (project) WHERE active = 1;
CREATE TABLE IF NOT EXISTS models (
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (project, version)
);
CREATE TABLE IF NOT EXISTS project_settings (
    project TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
-- Added with /v1/search; a file written before gains the (empty) table on open.
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,           -- insertion order: what a search pages through
    index_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    image_key TEXT NOT NULL,          -- allowed path, or sha256:<hex> of an upload
    source TEXT NOT NULL,             -- the name the client sent
    vector BLOB NOT NULL,             -- float32 little-endian
    random_weights INTEGER NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (index_name, model_version, image_key)
);
"""
# Columns added after the first release; files written by it gain them on open.
_ADDED_COLUMNS = (
    ("predictions", "image_path", "TEXT"),
    ("corrections", "image_path", "TEXT"),
    ("corrections", "reviewed_ram", "TEXT"),
    ("corrections", "controls", "TEXT"),
)
_CORRECTION_COLUMNS = (
    "annotation_id, project, task_id, image_ref, model_version, predicted, ram_tags, final, final_ram_tags, "
    "action, deleted, created_at, updated_at, image_path, reviewed_ram, controls"
)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _job_from(body: str) -> TrainJob:
    return TrainJob(**json.loads(body))


class SQLiteStore(Store):
    """One connection, one lock; safe across threads, and across processes through SQLite's own locking."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.spec = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        for table, column, kind in _ADDED_COLUMNS:
            names = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in names:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- predictions ----------------------------------------------------------------

    def record_prediction(self, prediction: StoredPrediction) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO predictions (project, task_id, model_version, image_ref, predicted, "
                "ram_tags, created_at, image_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    prediction.project,
                    prediction.task_id,
                    prediction.model_version,
                    prediction.image_ref,
                    json.dumps(prediction.predicted),
                    json.dumps(prediction.ram_tags),
                    time.time(),
                    prediction.image_path,
                ),
            )

    def latest_prediction(self, project: str, task_id: int) -> StoredPrediction | None:
        with self._lock:
            row = self._db.execute(
                "SELECT project, task_id, model_version, image_ref, predicted, ram_tags, image_path FROM predictions "
                "WHERE project = ? AND task_id = ? ORDER BY created_at DESC LIMIT 1",
                (project, task_id),
            ).fetchone()
        if row is None:
            return None
        return StoredPrediction(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6])

    # -- corrections ----------------------------------------------------------------

    def _upsert_annotation(self, annotation_id: int, fields: dict[str, Any], predicted: StoredPrediction | None,
                           now: float) -> None:
        with self._lock:
            self._db.execute(
                """
                INSERT INTO corrections (annotation_id, project, task_id, image_ref, model_version, predicted,
                    ram_tags, final, final_ram_tags, action, deleted, created_at, updated_at, image_path,
                    reviewed_ram, controls)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)
                ON CONFLICT (annotation_id) DO UPDATE SET
                    project = excluded.project, task_id = excluded.task_id, image_ref = excluded.image_ref,
                    model_version = COALESCE(excluded.model_version, corrections.model_version),
                    predicted = COALESCE(excluded.predicted, corrections.predicted),
                    ram_tags = COALESCE(excluded.ram_tags, corrections.ram_tags),
                    image_path = COALESCE(excluded.image_path, corrections.image_path),
                    final = excluded.final, final_ram_tags = excluded.final_ram_tags,
                    reviewed_ram = excluded.reviewed_ram, controls = excluded.controls,
                    action = excluded.action, deleted = 0, updated_at = excluded.updated_at
                """,
                (
                    annotation_id,
                    fields["project"],
                    fields["task_id"],
                    fields["image_ref"],
                    predicted.model_version if predicted else None,
                    json.dumps(predicted.predicted) if predicted else None,
                    json.dumps(predicted.ram_tags) if predicted else None,
                    json.dumps(fields["final"]),
                    json.dumps(fields["final_ram_tags"]),
                    fields["action"],
                    now,
                    now,
                    predicted.image_path if predicted else None,
                    json.dumps(fields["reviewed_ram"]),
                    json.dumps(fields["controls"]),
                ),
            )

    def mark_deleted(self, annotation_id: int, action: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE corrections SET deleted = 1, action = ?, updated_at = ? WHERE annotation_id = ?",
                (action, time.time(), annotation_id),
            )
        return cursor.rowcount > 0

    def set_image_path(self, annotation_id: int, image_path: str) -> None:
        with self._lock:
            self._db.execute("UPDATE corrections SET image_path = ? WHERE annotation_id = ?",
                             (image_path, annotation_id))

    def get(self, annotation_id: int) -> Correction | None:
        rows = self._select("WHERE annotation_id = ?", (annotation_id,))
        return rows[0] if rows else None

    def corrections(self, *, project: str | None = None, include_deleted: bool = False) -> list[Correction]:
        clauses, params = [], []
        if project is not None:
            clauses.append("project = ?")
            params.append(project)
        if not include_deleted:
            clauses.append("deleted = 0")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._select(where + " ORDER BY annotation_id", tuple(params))

    def corrections_since(self, project: str, since: float) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM corrections WHERE project = ? AND deleted = 0 AND updated_at > ?",
                (project, since),
            ).fetchone()[0]

    def _select(self, tail: str, params: tuple) -> list[Correction]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_CORRECTION_COLUMNS} FROM corrections " + tail, params).fetchall()
        return [
            Correction(
                r[0], r[1], r[2], r[3], r[4], _loads(r[5]), _loads(r[6]), json.loads(r[7]), json.loads(r[8]),
                r[9], bool(r[10]), r[11], r[12], r[13], _loads(r[14]) or [], _loads(r[15]) or {},
            )
            for r in rows
        ]

    # -- jobs -----------------------------------------------------------------------

    def create_job(self, job: TrainJob) -> TrainJob:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO jobs (id, project, state, active, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (job.id, job.project, job.state, int(job.active), json.dumps(_job_body(job)), job.created_at),
                )
                return job
            except sqlite3.IntegrityError:
                row = self._db.execute("SELECT body FROM jobs WHERE project = ? AND active = 1",
                                       (job.project,)).fetchone()
        if row is None:  # the other job finished in between; try once more
            return self.create_job(job)
        raise JobConflict(_job_from(row[0]))

    def update_job(self, job_id: str, **fields: Any) -> TrainJob:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    raise KeyError(job_id)
                body = json.loads(row[0])
                body.update(fields)
                body["updated_at"] = time.time()
                job = TrainJob(**body)
                self._db.execute("UPDATE jobs SET state = ?, active = ?, body = ? WHERE id = ?",
                                 (job.state, int(job.active), json.dumps(_job_body(job)), job_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return job

    def get_job(self, job_id: str) -> TrainJob | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job_from(row[0])

    def jobs(self, *, project: str | None = None, limit: int = 100) -> list[TrainJob]:
        query, params = "SELECT body FROM jobs", ()
        if project is not None:
            query, params = query + " WHERE project = ?", (project,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at DESC LIMIT ?", (*params, limit)).fetchall()
        return [_job_from(r[0]) for r in rows]

    # -- models ---------------------------------------------------------------------

    def record_model(self, record: ModelRecord) -> None:
        body = json.dumps(record.__dict__)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?)",
                             (record.project, record.version, body, record.created_at))

    def models(self, project: str) -> list[ModelRecord]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM models WHERE project = ? ORDER BY created_at",
                                    (project,)).fetchall()
        return [ModelRecord(**json.loads(r[0])) for r in rows]

    # -- project settings -----------------------------------------------------------

    def project_settings(self, project: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT body FROM project_settings WHERE project = ?", (project,)).fetchone()
        return {} if row is None else json.loads(row[0])

    def set_project_settings(self, project: str, settings: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO project_settings VALUES (?, ?)", (project, json.dumps(settings)))

    # -- search indexes -------------------------------------------------------------

    def record_embeddings(self, rows: Sequence[StoredEmbedding]) -> None:
        now = time.time()
        with self._lock:
            self._db.executemany(
                "INSERT INTO embeddings (index_name, model_version, image_key, source, vector, random_weights, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (index_name, model_version, image_key) "
                "DO UPDATE SET source = excluded.source, vector = excluded.vector, "
                "random_weights = excluded.random_weights, created_at = excluded.created_at",
                [(r.index, r.model_version, r.key, r.source, r.vector, int(r.random_weights), now) for r in rows],
            )

    def embedding_chunks(self, index: str, model_version: str, *, chunk_size: int = 1024
                         ) -> Iterator[list[StoredEmbedding]]:
        last = -1
        while True:
            with self._lock:  # one short query per chunk; writers get the lock in between
                rows = self._db.execute(
                    "SELECT id, image_key, source, vector, random_weights FROM embeddings WHERE index_name = ? "
                    "AND model_version = ? AND id > ? ORDER BY id LIMIT ?",
                    (index, model_version, last, chunk_size),
                ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [StoredEmbedding(index, r[1], model_version, r[2], bytes(r[3]), bool(r[4])) for r in rows]


def _job_body(job: TrainJob) -> dict[str, Any]:
    return dict(job.__dict__)

