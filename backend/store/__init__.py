"""Where the server keeps predictions, corrections, training jobs, the model index and
per-project settings: `open_store(spec)` gives SQLite for a path, MongoDB for a
`mongodb://` URI; both implement `Store`."""
from __future__ import annotations

from pathlib import Path

from .base import Store, new_job
from .records import (
    ACTIVE_JOB_STATES,
    FINAL_JOB_STATES,
    JOB_STATES,
    Correction,
    JobConflict,
    ModelRecord,
    StoredEmbedding,
    StoredPrediction,
    TrainJob,
)

__all__ = [
    "ACTIVE_JOB_STATES", "FINAL_JOB_STATES", "JOB_STATES", "Correction", "JobConflict", "ModelRecord",
    "Store", "StoredEmbedding", "StoredPrediction", "TrainJob", "new_job", "open_store",
]


def open_store(spec: str | Path) -> Store:
    """`mongodb://HOST[:PORT]/DB` (or `mongodb+srv://`) opens MongoDB; anything else is a SQLite file path."""
    text = str(spec)
    if text.startswith(("mongodb://", "mongodb+srv://")):
        from .mongo import MongoStore

        return MongoStore(text)
    from .sqlite import SQLiteStore

    return SQLiteStore(Path(text))
