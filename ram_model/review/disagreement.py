"""Where the existing labels and the model disagree, per tag, per sample and per class.

Method (also in docs/review.md). Each probability is first re-centred on its class
threshold, ``q = sigmoid(logit(p) - logit(t))``, so that ``q = 0.5`` exactly at the model's
decision point whatever the class threshold is (RAM's thresholds range from 0.45 to 1.0;
without this, classes with high thresholds would look permanently "doubtful"). A tag's
error score is then the model's support for the *other* answer:

* label absent  -> ``missing`` score ``q``
* label present -> ``doubtful`` score ``1 - q``

and a tag is flagged when its error score exceeds ``flag_at`` (0.5: the model, at its own
threshold, would decide the other way). The per-sample score is, by default, the worst tag's
score (``max``): a sample's labels are wrong as soon as one tag is. Combining several tags
(``noisy_or`` over the ``top_k`` worst, or their mean) is available, but on held-out
synthetic datasets it ranked worse: clean samples often carry several borderline tags, and
summing them buries samples with one clear error. Because the sample score is the maximum,
``sample_scores > flag_at`` exactly when the sample has at least one flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._validation import as_label_matrix, as_prob_matrix, as_thresholds
from .ranking import rank_for_review

__all__ = [
    "TagIssue",
    "ClassSummary",
    "DisagreementReport",
    "tag_error_scores",
    "centred_probabilities",
    "estimate_thresholds",
    "aggregate_sample_scores",
    "find_disagreements",
    "AGGREGATIONS",
]

AGGREGATIONS = ("max", "noisy_or", "mean_top")
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class TagIssue:
    """One suspected label error: a tag that is probably missing, or present but doubtful."""

    label_index: int
    kind: Literal["missing", "doubtful"]
    score: float
    probability: float

    def to_dict(self) -> dict[str, object]:
        return {
            "label_index": self.label_index,
            "kind": self.kind,
            "score": self.score,
            "probability": self.probability,
        }


@dataclass(frozen=True)
class ClassSummary:
    """How often each class was flagged: tells whether a class's guideline or the model is off."""

    num_samples: int
    labelled: np.ndarray  # (L,) samples carrying the label
    missing: np.ndarray  # (L,) samples where the label is flagged missing
    doubtful: np.ndarray  # (L,) samples where the label is flagged doubtful
    mapped: np.ndarray  # (L,) bool, False where the model has no opinion (NaN)

    @property
    def missing_rate(self) -> np.ndarray:
        """Missing flags per sample *without* the label (where it could be missing)."""
        absent = self.num_samples - self.labelled
        return np.divide(self.missing, absent, out=np.zeros(self.missing.shape), where=absent > 0)

    @property
    def doubtful_rate(self) -> np.ndarray:
        """Doubtful flags per sample *with* the label."""
        return np.divide(self.doubtful, self.labelled, out=np.zeros(self.doubtful.shape), where=self.labelled > 0)

    def to_dict(self, label_names: Sequence[str] | None = None) -> list[dict[str, object]]:
        """One JSON-able row per class, in class order."""
        if label_names is not None and len(label_names) != len(self.labelled):
            raise ValueError(f"label_names has {len(label_names)} entries, the summary {len(self.labelled)}")
        rows = []
        for column in range(len(self.labelled)):
            row: dict[str, object] = {"label_index": column}
            if label_names is not None:
                row["label"] = label_names[column]
            row.update(
                mapped=bool(self.mapped[column]),
                labelled=int(self.labelled[column]),
                missing=int(self.missing[column]),
                doubtful=int(self.doubtful[column]),
                missing_rate=float(self.missing_rate[column]),
                doubtful_rate=float(self.doubtful_rate[column]),
            )
            rows.append(row)
        return rows


@dataclass(frozen=True)
class DisagreementReport:
    """Result of :func:`find_disagreements`; arrays are indexed like the inputs."""

    missing: list[list[TagIssue]]  # per sample, best (highest score) first
    doubtful: list[list[TagIssue]]  # per sample, best first
    sample_scores: np.ndarray  # (N,) in [0, 1]; higher = labels more likely wrong
    tag_scores: np.ndarray  # (N, L) in [0, 1], NaN where the model has no opinion
    class_summary: ClassSummary
    flag_at: float

    def top(self, n: int) -> np.ndarray:
        """Indices of the ``n`` most suspicious samples (see :func:`rank_for_review`)."""
        return rank_for_review(self.sample_scores, top_n=n)

    def issues(self, sample: int) -> list[TagIssue]:
        """Missing and doubtful flags of one sample together, highest score first."""
        return sorted(self.missing[sample] + self.doubtful[sample], key=lambda issue: (-issue.score, issue.label_index))


def _logit(values: np.ndarray) -> np.ndarray:
    clipped = np.clip(values, _EPS, 1 - _EPS)
    return np.log(clipped) - np.log1p(-clipped)


def tag_error_scores(labels: object, probs: object, *, thresholds: object = None) -> np.ndarray:
    """Per-tag error scores ``(N, L)``: the model's threshold-centred support for the other answer.

    Entries are NaN where the model has no opinion: NaN probability (unmapped label) or a
    threshold of NaN, 0 or 1 (a class the model never or always predicts).

    >>> tag_error_scores([{0}, set()], np.array([[0.2, 0.9], [0.5, 0.5]])).round(2)
    array([[0.8, 0.9],
           [0.5, 0.5]])
    """
    prob = as_prob_matrix(probs)
    present = as_label_matrix(labels, *prob.shape)
    centred = centred_probabilities(prob, thresholds=thresholds)
    return np.where(present, 1.0 - centred, centred)


def centred_probabilities(probs: object, *, thresholds: object = None) -> np.ndarray:
    """Probabilities re-centred so that each class threshold maps to 0.5: ``sigmoid(logit p - logit t)``.

    This is the one place where thresholds enter the review maths, so that a probability
    means the same thing in every class. NaN where the model has no opinion (NaN
    probability, or a threshold of NaN, 0 or 1).

    >>> centred_probabilities(np.array([[0.8, 0.8]]), thresholds=[0.5, 0.8]).round(2)
    array([[0.8, 0.5]])
    """
    prob = as_prob_matrix(probs)
    threshold = as_thresholds(thresholds, prob.shape[1])
    with np.errstate(invalid="ignore"):
        informative = (threshold > 0) & (threshold < 1)
    centred = 1.0 / (1.0 + np.exp(-(_logit(prob) - _logit(np.where(informative, threshold, 0.5)))))
    centred[:, ~informative] = np.nan
    centred[np.isnan(prob)] = np.nan
    return centred


def estimate_thresholds(labels: object, probs: object, *, fallback: object = None, min_count: int = 5) -> np.ndarray:
    """Per-class decision thresholds ``(L,)`` estimated from the labels themselves.

    For models that ship no per-class thresholds (or whose thresholds do not fit the
    project's images), the threshold of class ``k`` is the midpoint between the mean
    probability of the samples labelled ``k`` and of those not labelled ``k``. Means are
    robust to a minority of wrong labels, and the midpoint puts the decision where the
    model's scores for the two groups separate (the idea behind cleanlab's per-class
    "confident thresholds"). Classes with fewer than ``min_count`` samples on either side,
    or without probabilities, get ``fallback`` (None = 0.5; a float or an ``(L,)`` array such
    as ``mapping.project_thresholds(engine.vocab.thresholds)``).

    >>> estimate_thresholds([{0}, {0}, set(), set()], np.array([[0.9], [0.7], [0.3], [0.1]]), min_count=2)
    array([0.5])
    >>> estimate_thresholds([{0}, {0}, set(), set()], np.array([[0.4], [0.4], [0.2], [0.0]]), min_count=2)
    array([0.25])
    """
    prob = as_prob_matrix(probs)
    present = as_label_matrix(labels, *prob.shape)
    fallback_values = as_thresholds(fallback, prob.shape[1])
    known = ~np.isnan(prob)
    positives = (present & known).sum(axis=0)
    negatives = (~present & known).sum(axis=0)
    filled = np.where(known, prob, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pos = (filled * present).sum(axis=0) / positives
        mean_neg = (filled * ~present).sum(axis=0) / negatives
    estimated = (mean_pos + mean_neg) / 2
    usable = (positives >= min_count) & (negatives >= min_count) & (estimated > 0) & (estimated < 1)
    return np.where(usable, estimated, fallback_values)


def aggregate_sample_scores(tag_scores: np.ndarray, *, method: str = "max", top_k: int = 3) -> np.ndarray:
    """Combine per-tag error scores ``(N, L)`` into one score per sample ``(N,)`` in [0, 1].

    ``max`` (default): the worst tag only.
    ``noisy_or``: ``1 - prod(1 - s)`` over the ``top_k`` highest tag scores.
    ``mean_top``: mean of the ``top_k`` highest scores.
    NaN tag scores are ignored; a sample with none left scores 0.

    >>> s = np.array([[0.9, 0.1, np.nan], [0.6, 0.6, 0.6]])
    >>> aggregate_sample_scores(s)
    array([0.9, 0.6])
    >>> aggregate_sample_scores(s, method="noisy_or").round(3)
    array([0.91 , 0.936])
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {AGGREGATIONS}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    scores = np.asarray(tag_scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"tag_scores must be 2-D (N, L), got shape {scores.shape}")
    filled = np.where(np.isnan(scores), 0.0, scores)
    k = min(int(top_k), filled.shape[1])
    if k == 0:
        return np.zeros(filled.shape[0])
    worst = -np.sort(-filled, axis=1)[:, :k]
    if method == "max":
        return worst[:, 0].copy()
    if method == "mean_top":
        return worst.mean(axis=1)
    return 1.0 - np.prod(1.0 - worst, axis=1)


def find_disagreements(
    labels: object,
    probs: object,
    *,
    thresholds: object = None,
    flag_at: float = 0.5,
    aggregation: str = "max",
    top_k: int = 3,
) -> DisagreementReport:
    """Flag tags where the labels and the model's probabilities disagree, and score samples.

    Parameters
    ----------
    labels : list of label-index sets (length N) or bool array (N, L)
        The existing labels, in project vocabulary.
    probs : array (N, L) in [0, 1]
        The model's probabilities in the same vocabulary; NaN columns (unmapped labels)
        are never flagged.
    thresholds : None, float or array (L,)
        The model's decision thresholds; None means 0.5. For RAM, pass
        ``mapping.project_thresholds(engine.vocab.thresholds)``.
    flag_at : float in [0.5, 1), default 0.5
        A tag is flagged when its error score exceeds this. 0.5 flags every tag where the
        model, at its threshold, decides the other way; raise it for fewer, surer flags.
    aggregation, top_k :
        How tag scores become a sample score (see :func:`aggregate_sample_scores`).

    >>> labels = [{0}, {0, 1}, {1}]
    >>> probs = np.array([[0.95, 0.90],   # tag 1 missing
    ...                   [0.90, 0.80],   # agrees
    ...                   [0.05, 0.02]])  # tag 1 doubtful
    >>> report = find_disagreements(labels, probs)
    >>> [(i.label_index, i.kind) for i in report.missing[0]], report.doubtful[2][0].label_index
    ([(1, 'missing')], 1)
    >>> report.top(3)
    array([2, 0, 1])
    """
    if not 0.5 <= float(flag_at) < 1.0:
        raise ValueError(f"flag_at must be in [0.5, 1), got {flag_at!r}")
    prob = as_prob_matrix(probs)
    present = as_label_matrix(labels, *prob.shape)
    scores = tag_error_scores(present, prob, thresholds=thresholds)
    sample_scores = aggregate_sample_scores(scores, method=aggregation, top_k=top_k)

    with np.errstate(invalid="ignore"):
        flagged = scores > flag_at  # NaN compares False: unmapped labels are never flagged
    missing_mask = flagged & ~present
    doubtful_mask = flagged & present
    missing = _issues_per_sample(missing_mask, scores, prob, "missing")
    doubtful = _issues_per_sample(doubtful_mask, scores, prob, "doubtful")
    summary = ClassSummary(
        num_samples=prob.shape[0],
        labelled=present.sum(axis=0),
        missing=missing_mask.sum(axis=0),
        doubtful=doubtful_mask.sum(axis=0),
        mapped=~np.isnan(scores).all(axis=0) if prob.shape[0] else np.zeros(prob.shape[1], dtype=bool),
    )
    return DisagreementReport(missing, doubtful, sample_scores, scores, summary, float(flag_at))


def _issues_per_sample(
    mask: np.ndarray, scores: np.ndarray, probs: np.ndarray, kind: Literal["missing", "doubtful"]
) -> list[list[TagIssue]]:
    rows, columns = np.nonzero(mask)
    flagged_scores = scores[rows, columns]
    order = np.lexsort((columns, -flagged_scores, rows))  # by sample, then best first, then label
    rows, columns = rows[order], columns[order]
    values, probabilities = flagged_scores[order].tolist(), probs[rows, columns].tolist()
    issues = [TagIssue(c, kind, v, p) for c, v, p in zip(columns.tolist(), values, probabilities, strict=True)]
    bounds = np.searchsorted(rows, np.arange(mask.shape[0] + 1)).tolist()
    return [issues[bounds[i] : bounds[i + 1]] for i in range(mask.shape[0])]
