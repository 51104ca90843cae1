"""Turning per-sample scores into a review order."""

from __future__ import annotations

import numpy as np

__all__ = ["rank_for_review"]


def rank_for_review(scores: np.ndarray, top_n: int | None = None) -> np.ndarray:
    """Indices of samples by descending ``scores``; ties go to the lower index, NaN comes last.

    Breaking ties by index keeps the order reproducible across runs and machines, and
    makes it depend only on each sample's own score (so shuffling the samples shuffles the
    indices, not the order of distinct scores).

    >>> rank_for_review(np.array([0.2, 0.9, 0.2, 0.5]))
    array([1, 3, 0, 2])
    >>> rank_for_review(np.array([0.2, np.nan, 0.7]), top_n=2)
    array([2, 0])
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"scores must be 1-D (one per sample), got shape {values.shape}")
    if top_n is not None and (isinstance(top_n, bool) or int(top_n) != top_n or top_n < 0):
        raise ValueError(f"top_n must be a non-negative integer or None, got {top_n!r}")
    missing = np.isnan(values)
    # lexsort sorts by the last key first: NaN flag, then descending score, then index.
    order = np.lexsort((np.arange(values.size), -np.where(missing, 0.0, values), missing))
    return order if top_n is None else order[: int(top_n)]
