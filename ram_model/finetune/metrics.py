"""Validation metrics of a tagger where some label cells are unknown (-1) and left out per cell."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["average_precision", "tagging_metrics"]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean of the precision at each positive, ranked by score (ties: all tied cells count together)."""
    positives = int(labels.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # Precision at the end of each group of tied scores, so ties do not depend on input order.
    last_of_group = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_group]
    seen = (np.flatnonzero(last_of_group) + 1)
    new_tp = np.diff(np.r_[0, tp])
    return float(np.sum(new_tp * (tp / seen)) / positives)


def _f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def tagging_metrics(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray,
                    names: Sequence[str]) -> dict[str, Any]:
    """Per-class AP / precision / recall / F1 at `thresholds`, plus micro and macro mAP and F1.

    Classes with no known positive in `labels` are left out (their AP is undefined).
    A class fires when its probability is strictly above its threshold, as in inference.
    """
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    known = labels >= 0
    fired = probs > np.asarray(thresholds)[None, :]
    evaluated = [k for k in range(labels.shape[1]) if np.any(labels[known[:, k], k] == 1)]
    per_class: dict[str, Any] = {}
    totals = np.zeros(3)
    aps, f1s = [], []
    for k in evaluated:
        rows = known[:, k]
        y = labels[rows, k] == 1
        f = fired[rows, k]
        tp, fp, fn = float(np.sum(f & y)), float(np.sum(f & ~y)), float(np.sum(~f & y))
        precision, recall, f1 = _f1(tp, fp, fn)
        ap = average_precision(probs[rows, k], y.astype(np.int64))
        totals += (tp, fp, fn)
        aps.append(ap)
        f1s.append(f1)
        per_class[names[k]] = {"ap": round(ap, 6), "precision": round(precision, 6), "recall": round(recall, 6),
                               "f1": round(f1, 6), "support": int(y.sum()), "known": int(rows.sum()),
                               "threshold": round(float(thresholds[k]), 6)}
    if evaluated:
        cols = np.array(evaluated)
        mask = known[:, cols]
        micro_map = average_precision(probs[:, cols][mask], (labels[:, cols][mask] == 1).astype(np.int64))
    else:
        micro_map = float("nan")
    micro_p, micro_r, micro_f1 = _f1(*totals)

    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), 6) if values else None

    return {
        "images": int(labels.shape[0]),
        "classes_evaluated": len(evaluated),
        "micro_map": None if np.isnan(micro_map) else round(float(micro_map), 6),
        "macro_map": mean(aps),
        "micro_precision": round(micro_p, 6),
        "micro_recall": round(micro_r, 6),
        "micro_f1": round(micro_f1, 6),
        "macro_f1": mean(f1s),
        "per_class": per_class,
    }
