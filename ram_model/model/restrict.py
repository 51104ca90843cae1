"""When computing only some classes pays, and putting their scores back in vocabulary order.

The integrations (the Label Studio backend, the FiftyOne plugin) restrict the engine to the
classes a project's labels map onto, but keep every threshold array, stored class index and
run record over the whole vocabulary. `expand_probs` is the bridge: the restricted scores at
their vocabulary index, NaN elsewhere (NaN never fires: `ram_model.inference.thresholds.fired_indices`).
"""
from __future__ import annotations

from collections.abc import Collection

import numpy as np

__all__ = ["FULL_VOCABULARY_SHARE", "expand_probs", "worth_restricting"]

# A project needing at least this share of the vocabulary gets the full engine: the head is
# only part of a forward, so leaving out a minority of classes gains little.
FULL_VOCABULARY_SHARE = 0.5


def worth_restricting(classes: Collection[int] | Collection[str], size: int) -> bool:
    """True when computing only `classes` (distinct) of a `size`-class vocabulary is worth a view."""
    count = len(set(classes))
    return 0 < count < FULL_VOCABULARY_SHARE * size


def expand_probs(probs: np.ndarray, columns: np.ndarray, size: int) -> np.ndarray:
    """(..., len(columns)) scores -> (..., size), NaN where a class was not computed."""
    full = np.full((*probs.shape[:-1], size), np.nan, dtype=np.float32)
    full[..., columns] = probs
    return full
