"""Choosing the next batch of samples for a human to review (active learning).

Three signals, each answering a different question:

* ``disagreement``: where are the current labels most likely wrong? (scores from
  :func:`find_disagreements`; fixes existing data)
* ``uncertainty``: where is the model least sure, i.e. probabilities closest to the class
  thresholds? (labels here teach the model most)
* ``diversity``: which samples cover parts of the image space nobody has looked at?
  (greedy k-center on the engine's image embeddings; avoids reviewing 50 near-duplicates)

``mix`` splits the batch between the available signals by ``weights`` (largest-remainder
quotas, filled in the order disagreement, uncertainty, diversity, each skipping what an
earlier one took), and the diversity share treats everything already chosen or excluded as
covered. Every choice is deterministic given ``seed``: the seed only picks the first
k-center when nothing is covered yet, and the order of ``random``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .disagreement import centred_probabilities
from .ranking import rank_for_review

__all__ = ["select_review_batch", "uncertainty_scores", "k_center_greedy"]

_SIGNALS = ("disagreement", "uncertainty", "diversity")


def uncertainty_scores(probs: np.ndarray, *, thresholds: object = None) -> np.ndarray:
    """Per-sample uncertainty ``(N,)`` in [0, 1]: mean binary entropy (in bits) of the
    threshold-centred probabilities over the labels the model has an opinion on.

    A tag exactly at its threshold contributes 1, a confident tag close to 0.

    >>> uncertainty_scores(np.array([[0.5, 0.5], [0.99, 0.01]])).round(3)
    array([1.   , 0.081])
    """
    centred = centred_probabilities(probs, thresholds=thresholds)
    clipped = np.clip(centred, 1e-12, 1 - 1e-12)
    entropy = -(clipped * np.log2(clipped) + (1 - clipped) * np.log2(1 - clipped))
    entropy[np.isnan(centred)] = np.nan
    counts = (~np.isnan(entropy)).sum(axis=1)
    totals = np.nansum(entropy, axis=1)
    return np.divide(totals, counts, out=np.zeros(len(totals)), where=counts > 0)


def k_center_greedy(
    embeddings: np.ndarray,
    n: int,
    *,
    covered: Iterable[int] = (),
    candidates: Iterable[int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Pick ``n`` candidates, each the farthest (cosine geometry) from everything picked or covered.

    Embeddings are L2-normalised first, so the result does not depend on their scale. With
    nothing covered, the first pick is drawn from the candidates with ``seed``; ties go to
    the lower index.

    >>> points = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    >>> k_center_greedy(points, 2, covered=[0])
    array([3, 2])
    """
    vectors = np.asarray(embeddings, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, D), got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("embeddings must be finite")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    pool = np.arange(len(unit)) if candidates is None else np.unique(np.fromiter(candidates, dtype=np.int64))
    covered_idx = np.unique(np.fromiter(covered, dtype=np.int64))
    pool = np.setdiff1d(pool, covered_idx)
    count = min(int(n), pool.size)
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    pool_vectors = unit[pool].astype(np.float32)  # float32 halves the per-pick cost; ranks are unaffected
    pool_sq = (pool_vectors**2).sum(axis=1)
    picks: list[int] = []
    if covered_idx.size:
        nearest = _min_sq_distances(pool_vectors, pool_sq, unit[covered_idx].astype(np.float32))
    else:
        first = int(np.random.default_rng(seed).choice(pool))
        picks.append(first)
        nearest = _sq_distances_to(pool_vectors, pool_sq, unit[first].astype(np.float32))
        nearest[pool == first] = -1.0
    while len(picks) < count:
        position = int(np.argmax(nearest))  # argmax returns the first maximum: lowest index wins ties
        picks.append(int(pool[position]))
        np.minimum(nearest, _sq_distances_to(pool_vectors, pool_sq, pool_vectors[position]), out=nearest)
        nearest[position] = -1.0
    return np.asarray(picks, dtype=np.int64)


def _sq_distances_to(points: np.ndarray, points_sq: np.ndarray, centre: np.ndarray) -> np.ndarray:
    # Squared distances through one matrix-vector product: no (N, D) temporary per pick.
    return np.clip(points_sq + centre @ centre - 2.0 * (points @ centre), 0.0, None)


def _min_sq_distances(points: np.ndarray, points_sq: np.ndarray, centres: np.ndarray, chunk: int = 256) -> np.ndarray:
    nearest = np.full(len(points), np.inf)
    centres_sq = (centres**2).sum(axis=1)
    for start in range(0, len(centres), chunk):
        block = centres[start : start + chunk]
        squared = points_sq[:, None] + centres_sq[None, start : start + chunk] - 2.0 * (points @ block.T)
        np.minimum(nearest, np.clip(squared, 0.0, None).min(axis=1), out=nearest)
    return nearest


def select_review_batch(
    n: int,
    *,
    disagreement: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    thresholds: object = None,
    embeddings: np.ndarray | None = None,
    weights: Mapping[str, float] | None = None,
    exclude: Iterable[int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices of up to ``n`` samples to review next, in the order they were chosen.

    Parameters
    ----------
    n : int
        Batch size; fewer come back when fewer samples are left after ``exclude``.
    disagreement : array (N,), optional
        Per-sample scores from ``find_disagreements(...).sample_scores``.
    probs, thresholds : array (N, L) and its thresholds, optional
        Model probabilities for the uncertainty signal (see :func:`uncertainty_scores`).
    embeddings : array (N, D), optional
        Image embeddings for the diversity signal (see :func:`k_center_greedy`).
    weights : mapping signal -> weight, optional
        Shares of the batch by signal ("disagreement", "uncertainty", "diversity"); default:
        equal shares for every signal given. One signal alone: give only its input, or weight
        only it.
    exclude : indices, optional
        Samples already reviewed; never returned, and count as covered for diversity.
    seed : int
        Makes the first k-center pick reproducible.

    >>> select_review_batch(2, disagreement=np.array([0.1, 0.9, 0.5]))
    array([1, 2])
    >>> select_review_batch(2, disagreement=np.array([0.1, 0.9, 0.5]), exclude=[1])
    array([2, 0])
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    signals = _signals(disagreement, probs, thresholds, embeddings)
    num_samples = _num_samples(signals, disagreement, probs, embeddings)
    excluded = _as_indices(exclude, num_samples)
    quotas = _quotas(int(n), _mix_weights(weights, signals))

    chosen: list[int] = []
    for signal in _SIGNALS:
        quota = quotas.get(signal, 0)
        if quota == 0:
            continue
        taken = np.concatenate([excluded, np.asarray(chosen, dtype=np.int64)])
        if signal == "diversity":
            picks = k_center_greedy(embeddings, quota, covered=taken, seed=seed)  # type: ignore[arg-type]
        else:
            order = rank_for_review(signals[signal])
            picks = order[~np.isin(order, taken)][:quota]
        chosen.extend(int(index) for index in picks)
    # Each signal takes min(quota, what is left), so the batch is min(n, available) long.
    return np.asarray(chosen, dtype=np.int64)


_INPUT_OF = {"disagreement": "disagreement=", "uncertainty": "probs=", "diversity": "embeddings="}


def _signals(
    disagreement: np.ndarray | None, probs: np.ndarray | None, thresholds: object, embeddings: np.ndarray | None
) -> dict[str, np.ndarray]:
    signals: dict[str, np.ndarray] = {}
    if disagreement is not None:
        scores = np.asarray(disagreement, dtype=np.float64)
        if scores.ndim != 1:
            raise ValueError(f"disagreement must be 1-D (N,), got shape {scores.shape}")
        signals["disagreement"] = scores
    if probs is not None:
        signals["uncertainty"] = uncertainty_scores(probs, thresholds=thresholds)
    if embeddings is not None:
        vectors = np.asarray(embeddings)
        if vectors.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (N, D), got shape {vectors.shape}")
        signals["diversity"] = vectors
    return signals


def _num_samples(signals: Mapping[str, np.ndarray], *inputs: np.ndarray | None) -> int:
    sizes = {name: len(values) for name, values in signals.items()}
    if not sizes:
        raise ValueError("give at least one of disagreement=, probs=, embeddings=")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs disagree on the number of samples: {sizes}")
    return next(iter(sizes.values()))


def _as_indices(exclude: Iterable[int] | None, num_samples: int) -> np.ndarray:
    if exclude is None:
        return np.empty(0, dtype=np.int64)
    indices = np.unique(np.fromiter((int(i) for i in exclude), dtype=np.int64))
    if indices.size and (indices[0] < 0 or indices[-1] >= num_samples):
        raise ValueError(f"exclude holds indices outside [0, {num_samples})")
    return indices


def _mix_weights(weights: Mapping[str, float] | None, signals: Mapping[str, np.ndarray]) -> dict[str, float]:
    if weights is None:
        return {name: 1.0 for name in _SIGNALS if name in signals}
    unknown = set(weights) - set(_SIGNALS)
    if unknown:
        raise ValueError(f"unknown weight keys {sorted(unknown)}; use {_SIGNALS}")
    for name, weight in weights.items():
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"weight for {name!r} must be a finite non-negative number, got {weight!r}")
        if weight > 0 and name not in signals:
            raise ValueError(f"weight for {name!r} given but {_INPUT_OF[name]} is missing")
    positive = {name: float(weights[name]) for name in _SIGNALS if weights.get(name, 0) > 0}
    if not positive:
        raise ValueError("at least one weight must be positive")
    return positive


def _quotas(n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``n`` by ``weights`` (ties go to the earlier signal)."""
    total = sum(weights.values())
    exact = {name: n * weight / total for name, weight in weights.items()}
    quotas = {name: int(np.floor(value)) for name, value in exact.items()}
    leftover = n - sum(quotas.values())
    by_remainder = sorted(weights, key=lambda name: (-(exact[name] - quotas[name]), _SIGNALS.index(name)))
    for name in by_remainder[:leftover]:
        quotas[name] += 1
    return quotas
