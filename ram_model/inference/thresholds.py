"""Turning probabilities into fired tags: class thresholds, overrides, top-k."""
from __future__ import annotations

import hashlib

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import ConfigError
from ..model.vocab import TagVocabulary

__all__ = ["Tag", "ThresholdPolicy", "fired_indices", "thresholds_digest"]


def thresholds_digest(thresholds: np.ndarray) -> str:
    """Short hash of resolved (K,) thresholds: a changed override must not pass for the same
    settings (a FiftyOne run's record, a served project's cache key)."""
    data = np.ascontiguousarray(thresholds, dtype=np.float32).tobytes()
    return hashlib.sha256(data).hexdigest()[:12]


def fired_indices(probs: np.ndarray, thresholds: np.ndarray, *, top_k: int | None = None) -> np.ndarray:
    """The one rule that decides which tags fire, wherever tags are shown.

    A tag fires when its probability is strictly greater than its threshold (the
    official rule); a NaN threshold (a label that maps to no RAM tag) never fires.
    Fired tags come best first (ties keep class order) and at most `top_k` of them.
    """
    with np.errstate(invalid="ignore"):
        idx = np.flatnonzero(probs > thresholds)
    idx = idx[np.argsort(-probs[idx], kind="stable")]
    return idx[:top_k] if top_k else idx


@dataclass(frozen=True)
class Tag:
    index: int
    name: str
    name_zh: str
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "name": self.name, "name_zh": self.name_zh, "score": round(self.score, 6)}


@dataclass(frozen=True)
class ThresholdPolicy:
    """Which tags fire: the class-threshold file, then a global override, then per-tag overrides.

    A tag fires when its probability is strictly greater than its threshold (the official
    rule); `top_k` keeps only the k best fired tags.
    """

    threshold: float | None = None
    per_tag: Mapping[str, float] | None = None
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must lie in [0, 1], not {self.threshold}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, not {self.top_k}")
        for name, value in (self.per_tag or {}).items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"threshold for {name!r} must lie in [0, 1], not {value}")

    def resolve(self, vocab: TagVocabulary) -> np.ndarray:
        """(K,) float32 thresholds in class order."""
        values = vocab.thresholds.astype(np.float32, copy=True)
        if self.threshold is not None:
            values[:] = self.threshold
        for name, value in (self.per_tag or {}).items():
            try:
                values[vocab.index_of(name)] = value
            except KeyError as e:
                raise ConfigError(f"per-tag threshold names {name!r}, which is not in the tag list") from e
        return values

    def fired(self, probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """Indices of fired classes for one (K,) probability row, best first, at most top_k."""
        return fired_indices(probs, thresholds, top_k=self.top_k)

    def select(self, probs: np.ndarray, vocab: TagVocabulary, thresholds: np.ndarray | None = None) -> list[Tag]:
        """Fired tags of one (K,) probability row; pass `thresholds` from `resolve` to skip re-resolving."""
        limits = self.resolve(vocab) if thresholds is None else thresholds
        return [
            Tag(int(i), vocab.names[i], vocab.names_zh[i], float(probs[i]))
            for i in self.fired(probs, limits)
        ]
