"""Durable record of what RAM predicted and what annotators finally chose.

Every `/predict` answer and every annotation that arrives by webhook lands in the
server's store (`backend.store`: SQLite under MODEL_DIR by default, or MongoDB), so
turning corrections into finetuning data never needs Label Studio again. Deleting an
annotation in Label Studio only marks the row: a correction, once made, is never lost.
`CorrectionsStore(path)` opens the SQLite store directly (scripts, tests).
"""
from __future__ import annotations

from .store.records import Correction, StoredPrediction
from .store.sqlite import SQLiteStore as CorrectionsStore

__all__ = ["Correction", "CorrectionsStore", "StoredPrediction"]
