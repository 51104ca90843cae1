"""Input checks shared by the review functions, so every entry point fails the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_THRESHOLD = 0.5


def as_prob_matrix(probs: object, *, name: str = "probs") -> np.ndarray:
    """``(N, L)`` float64 copy of ``probs``; NaN is allowed (no opinion), other values must be in [0, 1]."""
    array = np.array(probs, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N samples, L labels), got shape {array.shape}")
    finite = array[~np.isnan(array)]
    if np.isinf(finite).any() or (finite < 0).any() or (finite > 1).any():
        raise ValueError(f"{name} must be probabilities in [0, 1] (NaN marks an unmapped label)")
    return array


def as_label_matrix(labels: object, num_samples: int, num_labels: int) -> np.ndarray:
    """Dense ``(N, L)`` bool matrix from a bool array or from per-sample label-index sets."""
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        if labels.dtype != np.bool_:
            raise ValueError(
                "a 2-D labels array must be bool (N, L); pass label-index sets as a list, "
                "or convert a 0/1 matrix with .astype(bool)"
            )
        if labels.shape != (num_samples, num_labels):
            raise ValueError(f"labels has shape {labels.shape}, probs implies ({num_samples}, {num_labels})")
        return labels.copy()
    if not isinstance(labels, Sequence) and not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a sequence of label-index sets or a bool array, got {type(labels).__name__}")
    if len(labels) != num_samples:
        raise ValueError(f"labels has {len(labels)} samples but probs has {num_samples}")
    dense = np.zeros((num_samples, num_labels), dtype=bool)
    for row, indices in enumerate(labels):
        if isinstance(indices, (str, bytes)) or not isinstance(indices, Iterable):
            raise TypeError(f"labels[{row}] must be an iterable of label indices, got {indices!r}")
        for index in indices:
            if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"labels[{row}] holds {index!r}; label indices must be integers")
            if not 0 <= index < num_labels:
                raise ValueError(f"labels[{row}] holds index {index}, outside [0, {num_labels})")
            dense[row, index] = True
    return dense


def as_thresholds(thresholds: object, num_labels: int) -> np.ndarray:
    """``(L,)`` thresholds from None (0.5), a float, or an array; NaN allowed (unmapped label)."""
    if thresholds is None:
        return np.full(num_labels, DEFAULT_THRESHOLD)
    array = np.array(thresholds, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(num_labels, float(array))
    if array.shape != (num_labels,):
        raise ValueError(f"thresholds must be a float or shape ({num_labels},), got shape {array.shape}")
    finite = array[~np.isnan(array)]
    if np.isinf(finite).any() or (finite < 0).any() or (finite > 1).any():
        raise ValueError("thresholds must lie in [0, 1]")
    return array
