"""Per-class thresholds tuned on reviewed labels.

RAM's official class thresholds were fitted on its own training mix; a project with its
own images and its own idea of a tag is better served by cuts fitted to what its
reviewers accepted. Two things make that safe with little data:

* Only reviewed cells count. A label matrix holds 1 (the tag belongs), 0 (a reviewer saw
  the class and it does not belong) or -1 (nobody looked: neither positive nor negative).
* Few reviewed positives give a noisy best cut, so the cut is shrunk towards the prior
  (RAM's official threshold): ``t = (n * t_best + shrink * prior) / (n + shrink)`` with
  ``n`` the class's reviewed positives, and a class under ``min_count`` positives keeps
  the prior outright.

A tag fires when ``prob > threshold`` (strictly, the project's rule), so the candidate
cuts lie strictly between consecutive distinct scores: every set of fired samples a
threshold can produce is reached by exactly one candidate, and no sample sits on a cut.
Scores are compared in float32, as the engine compares them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from ..option import option
from .atomic_io import atomic_write_json, atomic_write_text

__all__ = ["ClassThreshold", "TunedThresholds", "TuningOptions", "format_threshold", "reviewed_label_matrix",
           "tune_thresholds"]

Target = Literal["f1", "precision"]
Source = Literal["tuned", "shrunk", "prior"]
DEFAULT_PRIOR = 0.5


@dataclass(frozen=True)
class TuningOptions:
    """How thresholds are fitted: the options `ram-annotate thresholds tune`, the FiftyOne
    "Tune RAM thresholds" form and `ram-annotate fiftyone tune-thresholds` all take (declared
    here once, `ram_model.option`). Checked when made: a bad combination never reaches a run."""

    target: Target = option("f1", "f1: the cut with the best F1; precision: the lowest cut reaching the minimum "
                                  "precision (the most recall at that precision)", str, choices=("f1", "precision"),
                            label="Target")
    min_precision: float | None = option(None, "the precision a class must keep, with target precision (0 < P <= 1)",
                                         float, low=0.0, high=1.0, metavar="P",
                                         label="Minimum precision (target precision)")
    min_count: int = option(5, "classes with fewer reviewed positives keep their current threshold", int, low=0,
                            label="Fewest reviewed positives to tune a class")
    shrink: float = option(10.0, "pull towards the current threshold, worth this many positives (0: none)", float,
                           low=0.0, label="Shrink towards RAM's threshold (worth N positives)")

    def __post_init__(self) -> None:
        if self.target not in ("f1", "precision"):
            raise ValueError(f"target must be 'f1' or 'precision', got {self.target!r}")
        if self.target == "precision":
            if self.min_precision is None or not 0.0 < float(self.min_precision) <= 1.0:
                raise ValueError(f"target 'precision' needs min_precision (--min-precision) in (0, 1], "
                                 f"got {self.min_precision!r}")
        elif self.min_precision is not None:
            raise ValueError("min_precision (--min-precision) applies only to target 'precision'")
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, (int, np.integer)) or self.min_count < 0:
            raise ValueError(f"min_count must be a non-negative integer, got {self.min_count!r}")
        if not np.isfinite(self.shrink) or self.shrink < 0:
            raise ValueError(f"shrink must be a non-negative number, got {self.shrink!r}")


@dataclass(frozen=True)
class ClassThreshold:
    """One class's outcome. ``precision``/``recall``/``f1`` are measured at the final
    ``threshold`` on the reviewed cells; None where undefined (nothing fired, no positive).
    ``best_threshold`` is the unshrunk cut (None when the class kept its prior)."""

    index: int
    threshold: float
    prior: float
    positives: int
    negatives: int
    precision: float | None
    recall: float | None
    f1: float | None
    source: Source
    best_threshold: float | None = None
    note: str = ""


@dataclass(frozen=True)
class TunedThresholds:
    thresholds: np.ndarray  # (K,) float32
    per_class: list[ClassThreshold]
    target: Target = "f1"
    min_precision: float | None = None
    min_count: int = 5
    shrink: float = 10.0

    def to_dict(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-able report; ``names`` (K class names) adds a ``name`` to every class."""
        if names is not None and len(names) != len(self.per_class):
            raise ValueError(f"names has {len(names)} entries for {len(self.per_class)} classes")
        classes = []
        for entry in self.per_class:
            row = asdict(entry)
            if names is not None:
                row = {"index": entry.index, "name": str(names[entry.index]), **row}
            classes.append(row)
        counts = {source: sum(1 for c in self.per_class if c.source == source) for source in ("tuned", "shrunk", "prior")}
        return {
            "target": self.target,
            "min_precision": self.min_precision,
            "min_count": self.min_count,
            "shrink": self.shrink,
            "num_classes": len(self.per_class),
            "sources": counts,
            "classes": classes,
        }

    def why_none(self) -> str | None:
        """When no class was tuned, one sentence saying why (None when some were): a bare
        "tuned 0" leaves the user guessing between too few reviews and a bad setting."""
        if any(c.source != "prior" for c in self.per_class):
            return None
        reviewed = [c for c in self.per_class if c.positives or c.negatives]
        if not reviewed:
            return "no class was tuned: nothing was reviewed (no sample has a reviewed label)"
        most = max(c.positives for c in reviewed)
        if most < max(self.min_count, 1):
            return (f"no class was tuned: each of the {len(reviewed)} reviewed class(es) has fewer than "
                    f"min_count={max(self.min_count, 1)} reviewed positives (the most: {most}); review more "
                    "samples or lower min_count")
        notes = sorted({c.note for c in reviewed if c.note})
        return "no class was tuned: " + ("; ".join(notes[:3]) if notes else "RAM's thresholds were already best")

    def write(self, path: str | os.PathLike[str], names: Sequence[str] | None = None) -> Path:
        """Write the thresholds file (one value per line, class order: the official format the
        engine's ``thresholds=`` reads) and ``<path>.report.json``, each atomically."""
        target = Path(path)
        report = self.to_dict(names)  # validates names before anything is written
        atomic_write_text(target, "".join(format_threshold(t) + "\n" for t in self.thresholds))
        atomic_write_json(report_path(target), report)
        return target


def reviewed_label_matrix(positives: Sequence[Iterable[int]], reviewed: Sequence[Iterable[int]], num_classes: int,
                          *, unknown: int = -1) -> np.ndarray:
    """(N, K) int8 labels, one row per example: 1 positive, 0 reviewed and not chosen, `unknown`
    (-1: contributes nothing) elsewhere. The one way reviewed labels become what
    `tune_thresholds` and fine-tuning read; class indices outside K are ignored."""
    out = np.full((len(positives), num_classes), unknown, dtype=np.int8)
    for row, (chosen, seen) in enumerate(zip(positives, reviewed)):
        out[row, [i for i in seen if 0 <= i < num_classes]] = 0
        out[row, [i for i in chosen if 0 <= i < num_classes]] = 1
    return out


def report_path(path: str | os.PathLike[str]) -> Path:
    return Path(str(path) + ".report.json")


def format_threshold(value: float) -> str:
    """Shortest text that reads back as the same float32 (``0.65``, not ``0.6499999761581421``)."""
    return np.format_float_positional(np.float32(value), unique=True, trim="0")


def tune_thresholds(
    labels: object,
    probs: object,
    *,
    target: Target = "f1",
    min_precision: float | None = None,
    prior: object = None,
    min_count: int = 5,
    shrink: float = 10,
) -> TunedThresholds:
    """Per-class cuts from reviewed labels (see the module docstring for the method).

    ``target="f1"`` picks the cut with the best F1 on the reviewed cells (ties: the cut
    nearest the prior). ``target="precision"`` picks the lowest cut whose precision reaches
    ``min_precision`` (the most recall at that precision); a class that cannot reach it at
    any cut that fires something keeps the prior, with a note.

    >>> labels = np.array([[1], [1], [0], [1], [0], [1], [0]])
    >>> probs = np.array([[0.9], [0.8], [0.3], [0.7], [0.2], [0.6], [0.5]])
    >>> tuned = tune_thresholds(labels, probs, min_count=1, shrink=0)
    >>> format_threshold(tuned.thresholds[0]), tuned.per_class[0].f1, tuned.per_class[0].source
    ('0.55', 1.0, 'tuned')
    >>> shrunk = tune_thresholds(labels, probs, prior=0.75, min_count=1, shrink=4)  # (4*0.55 + 4*0.75) / 8
    >>> format_threshold(shrunk.thresholds[0]), shrunk.per_class[0].source
    ('0.65', 'shrunk')
    """
    label_matrix, prob_matrix = _check_inputs(labels, probs)
    num_classes = label_matrix.shape[1]
    priors = _check_prior(prior, num_classes)
    TuningOptions(target=target, min_precision=min_precision, min_count=min_count, shrink=shrink)  # the checks
    min_precision = None if min_precision is None else float(min_precision)

    per_class = [
        _tune_class(index, label_matrix[:, index], prob_matrix[:, index], float(priors[index]),
                    target=target, min_precision=min_precision, min_count=int(min_count), shrink=float(shrink))
        for index in range(num_classes)
    ]
    thresholds = np.array([entry.threshold for entry in per_class], dtype=np.float32).reshape(num_classes)
    return TunedThresholds(thresholds, per_class, target, min_precision, int(min_count), float(shrink))


def _check_inputs(labels: object, probs: object) -> tuple[np.ndarray, np.ndarray]:
    label_matrix = np.asarray(labels)
    if label_matrix.ndim != 2:
        raise ValueError(f"labels must be a 2-D (N, K) array, got shape {label_matrix.shape}")
    if label_matrix.dtype == np.bool_:
        label_matrix = label_matrix.astype(np.int8)
    elif not np.issubdtype(label_matrix.dtype, np.number):
        raise ValueError(f"labels must be numeric (1, 0 or -1), got dtype {label_matrix.dtype}")
    if not np.isin(label_matrix, (-1, 0, 1)).all():
        raise ValueError("labels may hold only 1 (positive), 0 (reviewed negative) and -1 (not reviewed)")
    label_matrix = label_matrix.astype(np.int8)
    prob_matrix = np.asarray(probs, dtype=np.float32)
    if prob_matrix.shape != label_matrix.shape:
        raise ValueError(f"probs has shape {prob_matrix.shape} but labels has {label_matrix.shape}")
    reviewed = label_matrix >= 0
    if np.isnan(prob_matrix[reviewed]).any():
        raise ValueError("probs is NaN on a reviewed cell; mark the cell -1 if the model has no score")
    finite = prob_matrix[~np.isnan(prob_matrix)]
    if ((finite < 0) | (finite > 1)).any():
        raise ValueError("probs must be probabilities in [0, 1]")
    return label_matrix, prob_matrix


def _check_prior(prior: object, num_classes: int) -> np.ndarray:
    if prior is None:
        return np.full(num_classes, DEFAULT_PRIOR, dtype=np.float32)
    values = np.asarray(prior, dtype=np.float32)
    if values.ndim == 0:
        values = np.full(num_classes, float(values), dtype=np.float32)
    if values.shape != (num_classes,):
        raise ValueError(f"prior must be a float or shape ({num_classes},), got shape {values.shape}")
    if not np.isfinite(values).all() or ((values < 0) | (values > 1)).any():
        raise ValueError("prior thresholds must lie in [0, 1]")
    return values


def _tune_class(index: int, labels: np.ndarray, probs: np.ndarray, prior: float, *, target: Target,
                min_precision: float | None, min_count: int, shrink: float) -> ClassThreshold:
    reviewed = labels >= 0
    scores = probs[reviewed]
    truth = labels[reviewed] == 1
    positives, negatives = int(truth.sum()), int((~truth).sum())

    def outcome(threshold: float, source: Source, best: float | None = None, note: str = "") -> ClassThreshold:
        precision, recall, f1 = _metrics_at(scores, truth, np.float32(threshold))
        return ClassThreshold(index, float(np.float32(threshold)), float(np.float32(prior)), positives, negatives,
                              precision, recall, f1, source, best, note)

    if positives < max(min_count, 1):
        return outcome(prior, "prior", note=f"{positives} reviewed positive(s), fewer than min_count={max(min_count, 1)}")
    cuts, tp, fp = _candidate_cuts(scores, truth)
    if target == "f1":
        f1 = 2 * tp / (2 * tp + fp + (positives - tp))
        best_f1 = f1.max()
        tied = np.flatnonzero(f1 >= best_f1 - 1e-12)
        best = float(cuts[tied[np.argmin(np.abs(cuts[tied].astype(np.float64) - prior))]])
    else:
        fired = tp + fp
        precision = np.divide(tp, fired, out=np.zeros_like(tp, dtype=np.float64), where=fired > 0)
        reaching = np.flatnonzero((fired > 0) & (precision >= min_precision - 1e-12))
        if reaching.size == 0:
            return outcome(prior, "prior", note=f"no cut reaches precision {min_precision}")
        best = float(cuts[reaching].min())
    if shrink == 0:
        return outcome(best, "tuned", best)
    shrunk = (positives * best + shrink * prior) / (positives + shrink)
    return outcome(shrunk, "shrunk", best)


def _candidate_cuts(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float32 cuts, one per distinct fired set, with the true/false positives each fires."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    distinct, first = np.unique(-sorted_scores, return_index=True)  # descending distinct values
    distinct = -distinct
    tp_cum = np.cumsum(truth[order])
    fp_cum = np.cumsum(~truth[order])
    # "fire every score >= distinct[j]": counts up to the last sample with that value.
    last = np.append(first[1:], len(sorted_scores)) - 1
    tp = np.concatenate([[0], tp_cum[last]])
    fp = np.concatenate([[0], fp_cum[last]])
    lower = np.append(distinct[1:], np.float32(0.0))  # next lower score (0 below the lowest)
    cuts = np.empty(len(distinct) + 1, dtype=np.float32)
    cuts[0] = distinct[0]  # fires nothing: no score is > the highest one
    middle = ((distinct.astype(np.float64) + lower) / 2).astype(np.float32)
    # A float32 midpoint of neighbouring floats can round up onto the upper score; the lower
    # score itself is then the cut (it fires exactly the scores above it).
    cuts[1:] = np.where(middle < distinct, middle, lower)
    if distinct[-1] == 0:  # a score of 0 cannot fire at any threshold >= 0
        tp, fp, cuts = tp[:-1], fp[:-1], cuts[:-1]
    return cuts, tp.astype(np.float64), fp.astype(np.float64)


def _metrics_at(scores: np.ndarray, truth: np.ndarray, threshold: np.float32) -> tuple[float | None, float | None, float | None]:
    fired = scores > threshold
    tp = int((fired & truth).sum())
    fired_count, positives = int(fired.sum()), int(truth.sum())
    precision = tp / fired_count if fired_count else None
    recall = tp / positives if positives else None
    denominator = fired_count + positives
    f1 = 2 * tp / denominator if denominator else None
    return precision, recall, f1
