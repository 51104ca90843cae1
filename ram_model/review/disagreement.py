"""Where the existing labels and the model disagree, per tag, per sample and per class.

Method (also in docs/review.md). Each probability is first re-centred on its class
threshold, ``q = sigmoid(logit(p) - logit(t))``, so that ``q = 0.5`` exactly at the model's
decision point whatever the class threshold is (RAM's thresholds range from 0.45 to 1.0).

The labels are then read through an explicit *tag-flip* noise model: an annotator drops a
tag that belongs (``missing``) or adds one that does not (``doubtful``). A fraction
``noise_rate`` of samples carries such errors, ``FLIPS_PER_ERROR`` tags each on average,
half drops and half additions, spread over the tags a sample has (drops) or lacks
(additions). Per tag, the posterior odds that its label is wrong are the prior odds of that
flip times the model's likelihood ratio (``q / (1 - q)`` for an absent tag, the inverse for
a present one); the tag score is the posterior probability, and the sample score is the
probability that at least one of its tags is wrong. Unlike "the worst tag" this adds up
several suspicious tags, and unlike a symmetric rule it knows that, in a sample with three
tags out of fifty, one absent tag that belongs is far likelier than one present tag that
does not.

From ``MIN_SAMPLES_TO_ESTIMATE`` samples on, each class's centred probabilities are first
recalibrated against the labels (Platt scaling, refitted against noise-aware soft targets,
see :func:`calibrate_per_class`), so that the likelihood ratios mean what they say.

``noise_rate`` is estimated from the data (the rate at which the model's own posteriors
add up to it; a unique fixed point) once there are ``MIN_SAMPLES_TO_ESTIMATE`` samples;
below that the prior ``DEFAULT_NOISE_RATE`` is used. Flags: by default the tags whose
posterior lies above the cut that maximises the expected F1 of the flags under these
posteriors (again from ``MIN_SAMPLES_TO_ESTIMATE`` samples; fewer samples flag a tag only
when it is more likely wrong than right, posterior > 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
    "flip_posteriors",
    "estimate_noise_rate",
    "expected_f1_cut",
    "DEFAULT_NOISE_RATE",
    "FLIPS_PER_ERROR",
    "MIN_SAMPLES_TO_ESTIMATE",
    "calibrate_per_class",
]

# Prior share of samples with at least one wrong tag, used until there are enough samples
# to estimate it (a common figure for crowd-sourced tags; the estimate replaces it).
DEFAULT_NOISE_RATE = 0.1
# Wrong tags per erroneous sample, on average; drops and additions equally likely a priori.
FLIPS_PER_ERROR = 1.5
DROP_SHARE = 0.5
# Below this many samples the noise rate and the flag cut keep their priors: too few
# posteriors to average, and the backend scores one task at a time.
MIN_SAMPLES_TO_ESTIMATE = 50
_NOISE_RATE_BOUNDS = (1e-3, 0.5)
# Per-class calibration needs both answers often enough to fit a slope and an offset.
MIN_CLASS_COUNT_TO_CALIBRATE = 5
# L2 pull of the calibration towards "no change" (slope 1, offset 0), in samples' worth.
_CALIBRATION_PRIOR = 1.0
# Refits of the calibration against noise-aware targets (see _calibrate_against_noisy_labels).
CALIBRATION_ROUNDS = 2
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class TagIssue:
    """One suspected label error: a tag that is probably missing, or present but doubtful."""

    label_index: int
    kind: Literal["missing", "doubtful"]
    score: float
    probability: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


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
    flag_at: float  # the cut the flags used (tag_scores > flag_at)
    noise_rate: float = DEFAULT_NOISE_RATE  # share of samples with an error, as used (estimated or given)

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


def flip_posteriors(labels: object, probs: object, *, thresholds: object = None,
                    noise_rate: float = DEFAULT_NOISE_RATE) -> np.ndarray:
    """Per-tag probability ``(N, L)`` that the label is wrong, under the tag-flip model.

    The prior odds of a flip come from ``noise_rate`` and the label density (an error hits
    one of the ~``a`` tags a sample has, or one of the ~``L - a`` it lacks); the model's
    threshold-centred probability ``q`` gives the likelihood ratio. NaN where the model has
    no opinion (see :func:`centred_probabilities`).

    >>> p = flip_posteriors([{0}, {0}], np.array([[0.99, 0.99], [0.9, 0.1]]))
    >>> bool(p[0, 1] > 0.5), bool(p[1, 1] < 0.01)   # a sure tag is missing; an absent one agrees
    (True, True)
    """
    prob = as_prob_matrix(probs)
    present = as_label_matrix(labels, *prob.shape)
    rate = _check_noise_rate(noise_rate)
    odds = _flip_odds(present, centred_probabilities(prob, thresholds=thresholds), rate)
    return odds / (1.0 + odds)


def _likelihood_ratios(present: np.ndarray, centred: np.ndarray) -> np.ndarray:
    """How much likelier the model finds the other answer than the label's: NaN without opinion."""
    q = np.clip(centred, _EPS, 1 - _EPS)
    return np.where(present, (1 - q) / q, q / (1 - q))


def _flip_odds(present: np.ndarray, centred: np.ndarray, noise_rate: float) -> np.ndarray:
    drop_rate, add_rate = _flip_rates(present, ~np.isnan(centred), noise_rate)
    prior_odds = np.where(present, add_rate / (1 - drop_rate), drop_rate / (1 - add_rate))
    return prior_odds * _likelihood_ratios(present, centred)


def _flip_rates(present: np.ndarray, informative: np.ndarray, noise_rate: float) -> tuple[float, float]:
    """Chance that a tag that belongs is dropped, and that one that does not is added."""
    samples = max(present.shape[0], 1)
    # Integer counts: the same result whatever the sample order.
    tags_present = max(int((present & informative).sum()) / samples, 0.5)
    tags_absent = max(int((~present & informative).sum()) / samples, 0.5)
    flips = noise_rate * FLIPS_PER_ERROR
    return min(flips * DROP_SHARE / tags_present, 0.5), min(flips * (1 - DROP_SHARE) / tags_absent, 0.5)


def estimate_noise_rate(labels: object, probs: object, *, thresholds: object = None) -> float:
    """The share of samples with a wrong tag, estimated from the data.

    It is the fixed point ``rate = mean P(sample has an error | rate)``: the prior that the
    model's own posteriors reproduce on average (an EM step for the mixing proportion).
    ``P(error)`` grows more slowly than ``rate`` (it is concave in it), so the fixed point is
    unique; it is found by bisection on a log scale within [0.001, 0.5] and rounded to four
    decimals, so that reordering the samples cannot change it. Data that look clean give
    the lower bound.

    >>> rng = np.random.default_rng(0)
    >>> clean = rng.random((400, 5)) < 0.3
    >>> probs = np.where(clean, 0.999, 0.001)                   # a model that is sure and right
    >>> noisy = clean.copy(); noisy[:40, 0] = ~noisy[:40, 0]    # 10 % of samples, one flip each
    >>> estimate_noise_rate(noisy, probs), estimate_noise_rate(clean, probs)
    (0.0962, 0.001)

    The estimate leans low when the model is unsure of the tags it disputes (its
    likelihood ratios are then small). On the bench's two datasets it came within a
    factor of 1.5 of the true rate on the raw probabilities, and at 1.6 and 2.1 times it on
    the per-class calibrated ones that ``find_disagreements`` uses.
    """
    prob = as_prob_matrix(probs)
    present = as_label_matrix(labels, *prob.shape)
    centred = centred_probabilities(prob, thresholds=thresholds)
    return _estimate_noise_rate(present, centred)


def _estimate_noise_rate(present: np.ndarray, centred: np.ndarray) -> float:
    if present.shape[0] == 0:
        return DEFAULT_NOISE_RATE
    informative = ~np.isnan(centred)
    # The likelihood ratios do not depend on the rate: computed once, split by kind of flip.
    ratio = np.nan_to_num(_likelihood_ratios(present, centred), nan=0.0)
    ratio_present, ratio_absent = np.where(present, ratio, 0.0), np.where(present, 0.0, ratio)

    def excess(rate: float) -> float:
        drop_rate, add_rate = _flip_rates(present, informative, rate)
        odds = ratio_present * (add_rate / (1 - drop_rate)) + ratio_absent * (drop_rate / (1 - add_rate))
        return float(-np.expm1(-np.log1p(odds).sum(axis=1)).mean()) - rate

    low, high = _NOISE_RATE_BOUNDS
    if excess(low) <= 0:
        return low
    if excess(high) >= 0:
        return high
    log_low, log_high = np.log(low), np.log(high)
    for _ in range(30):
        middle = (log_low + log_high) / 2
        if excess(float(np.exp(middle))) > 0:
            log_low = middle
        else:
            log_high = middle
    return round(float(np.exp((log_low + log_high) / 2)), 4)


def expected_f1_cut(posteriors: np.ndarray) -> float:
    """The cut on per-tag posteriors that maximises the flags' expected F1.

    Flagging the ``m`` most likely errors gives, in expectation, ``2 * S_m / (m + S)``
    where ``S_m`` sums their posteriors and ``S`` all of them; the best ``m`` is found in one
    pass. The cut lies midway between the last flagged and the first unflagged posterior,
    so that ``posteriors > cut`` flags exactly those ``m``. NaN entries are ignored; with
    none left the cut is 0.5.

    >>> round(expected_f1_cut(np.array([0.9, 0.8, 0.05, 0.01])), 3)
    0.425
    """
    values = np.asarray(posteriors, dtype=np.float64).ravel()
    values = np.sort(values[~np.isnan(values)])[::-1]
    if values.size == 0 or values[0] <= 0:
        return 0.5
    expected = 2 * np.cumsum(values) / (np.arange(1, values.size + 1) + values.sum())
    best = int(np.argmax(expected))
    below = values[best + 1] if best + 1 < values.size else 0.0
    return float((values[best] + below) / 2) if values[best] > below else float(np.nextafter(values[best], 0))


def calibrate_per_class(labels: object, centred: np.ndarray) -> np.ndarray:
    """Threshold-centred probabilities recalibrated per class against the labels (Platt scaling).

    The likelihood ratios above assume probabilities that mean what they say; a model
    trained with regularisation, or RAM on a project's own images, is often too timid or
    too bold in some classes. Per class, ``sigmoid(a * logit(q) + b)`` is fitted to the
    given labels by Newton's method (slope and offset pulled lightly towards 1 and 0). The
    few wrong labels barely move two parameters fitted on hundreds of samples. Classes
    with fewer than ``MIN_CLASS_COUNT_TO_CALIBRATE`` positives or negatives, and NaN
    entries, are left as they are.

    >>> labels = np.array([[True], [False], [True], [False], [True]] * 10)
    >>> timid = np.array([[0.6], [0.55], [0.45], [0.4], [0.7]] * 10)   # right more often than it says
    >>> calibrate_per_class(labels, timid)[:5, 0].round(2)
    array([0.73, 0.63, 0.43, 0.33, 0.87])
    """
    targets = np.asarray(labels, dtype=np.float64)  # bool labels, or soft targets in [0, 1]
    calibrated = np.array(centred, dtype=np.float64, copy=True)
    for column in range(calibrated.shape[1]):
        known = ~np.isnan(calibrated[:, column])
        target = targets[known, column]
        if min(target.sum(), (1 - target).sum()) < MIN_CLASS_COUNT_TO_CALIBRATE:
            continue
        logit = _logit(calibrated[known, column])
        slope, offset = _fit_platt(logit, target)
        calibrated[known, column] = _sigmoid(slope * logit + offset)
    return calibrated


def _calibrate_against_noisy_labels(present: np.ndarray, centred: np.ndarray, noise_rate: float) -> np.ndarray:
    """Per-class calibration that does not mistake label errors for overconfidence.

    Fitted to the labels as given, the slope comes out too flat: every wrong label looks
    like a confident mistake of the model. So the fit is repeated (EM style) against soft
    targets, each label counted as right with the probability that it is not flipped.
    """
    calibrated = calibrate_per_class(present, centred)
    for _ in range(CALIBRATION_ROUNDS):
        odds = _flip_odds(present, calibrated, noise_rate)
        flipped = odds / (1.0 + odds)
        calibrated = calibrate_per_class(np.where(present, 1.0 - flipped, flipped), centred)
    return calibrated


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))  # no overflow for large |values|


def _fit_platt(logit: np.ndarray, target: np.ndarray, iterations: int = 30) -> tuple[float, float]:
    slope, offset = 1.0, 0.0
    for _ in range(iterations):
        fitted = _sigmoid(slope * logit + offset)
        weight = fitted * (1 - fitted)
        gradient = np.array([((fitted - target) * logit).sum() + _CALIBRATION_PRIOR * (slope - 1),
                             (fitted - target).sum() + _CALIBRATION_PRIOR * offset])
        cross = (weight * logit).sum()
        hessian = np.array([[(weight * logit * logit).sum() + _CALIBRATION_PRIOR, cross],
                            [cross, weight.sum() + _CALIBRATION_PRIOR]])
        step = np.linalg.solve(hessian, gradient)
        slope, offset = slope - float(step[0]), offset - float(step[1])
        if np.abs(step).max() < 1e-8:
            break
    return slope, offset


def aggregate_sample_scores(tag_scores: np.ndarray) -> np.ndarray:
    """Combine per-tag flip posteriors ``(N, L)`` into one score per sample ``(N,)`` in [0, 1].

    ``1 - prod(1 - s)`` over every tag: the probability that at least one tag is wrong when
    the scores are independent flip posteriors (several suspicious tags add up, unlike the
    worst tag alone). NaN tag scores are ignored; a sample with none left scores 0.

    >>> s = np.array([[0.9, 0.1, np.nan], [0.6, 0.6, 0.6]])
    >>> aggregate_sample_scores(s).round(3)
    array([0.91 , 0.936])
    """
    scores = np.asarray(tag_scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"tag_scores must be 2-D (N, L), got shape {scores.shape}")
    filled = np.where(np.isnan(scores), 0.0, scores)
    return np.clip(-np.expm1(np.log1p(-np.minimum(filled, 1.0)).sum(axis=1)), 0.0, 1.0)


def find_disagreements(
    labels: object,
    probs: object,
    *,
    thresholds: object = None,
    noise_rate: float | None = None,
    calibrate: bool | None = None,
) -> DisagreementReport:
    """Flag tags whose labels are probably wrong, and score samples (method: module docstring).

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
    noise_rate : None or float in (0, 0.5]
        Share of samples with a wrong tag. None (default): estimated
        (:func:`estimate_noise_rate`) from ``MIN_SAMPLES_TO_ESTIMATE`` samples on,
        ``DEFAULT_NOISE_RATE`` below.
    calibrate : None or bool
        Recalibrate each class against the labels first (:func:`calibrate_per_class`).
        None (default): from ``MIN_SAMPLES_TO_ESTIMATE`` samples on.

    >>> labels = [{0}, {0, 1}, {1}]
    >>> probs = np.array([[0.999, 0.995],   # tag 1 missing
    ...                   [0.90, 0.80],     # agrees
    ...                   [0.01, 0.002]])   # tag 1 doubtful
    >>> report = find_disagreements(labels, probs)
    >>> [(i.label_index, i.kind) for i in report.missing[0]], report.doubtful[2][0].label_index
    ([(1, 'missing')], 1)
    >>> report.top(3)
    array([2, 0, 1])
    """
    prob = as_prob_matrix(probs)
    present = as_label_matrix(labels, *prob.shape)
    centred = centred_probabilities(prob, thresholds=thresholds)
    enough = prob.shape[0] >= MIN_SAMPLES_TO_ESTIMATE
    calibrating = calibrate if calibrate is not None else enough
    if noise_rate is not None:
        rate = _check_noise_rate(noise_rate)
    elif enough:
        # Estimated once, on probabilities calibrated to the labels as given (which leans
        # conservative); re-estimating inside the noise-aware refits would let the rate and
        # the calibration slope feed each other (it doubled the estimate on the bench).
        rate = _estimate_noise_rate(present, calibrate_per_class(present, centred) if calibrating else centred)
    else:
        rate = DEFAULT_NOISE_RATE
    if calibrating:
        centred = _calibrate_against_noisy_labels(present, centred, rate)
    odds = _flip_odds(present, centred, rate)
    scores = odds / (1.0 + odds)
    sample_scores = aggregate_sample_scores(scores)
    # A tag is flagged when its posterior exceeds the cut with the best expected F1, or,
    # with too few samples to trust that, when it is more likely wrong than right.
    cut = expected_f1_cut(scores) if enough else 0.5

    with np.errstate(invalid="ignore"):
        flagged = scores > cut  # NaN compares False: unmapped labels are never flagged
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
    return DisagreementReport(missing, doubtful, sample_scores, scores, summary, cut, rate)


def _check_noise_rate(noise_rate: object) -> float:
    if isinstance(noise_rate, bool) or not isinstance(noise_rate, (int, float, np.floating, np.integer)):
        raise ValueError(f"noise_rate must be a number in (0, 0.5], got {noise_rate!r}")
    if not 0.0 < float(noise_rate) <= 0.5:
        raise ValueError(f"noise_rate must be in (0, 0.5], got {noise_rate!r}")
    return float(noise_rate)


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
