"""tune_thresholds: per-class cuts from reviewed labels (unit and property tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ram_model.review import TunedThresholds, tune_thresholds
from ram_model.review.thresholds_tuning import format_threshold
from ram_model.model.vocab import read_thresholds

SETTINGS = settings(max_examples=80, deadline=None)


def f1_at(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    """F1 of one class on its reviewed cells, firing on prob > threshold in float32 (the engine's rule)."""
    reviewed = labels >= 0
    fired = probs[reviewed].astype(np.float32) > np.float32(threshold)
    truth = labels[reviewed] == 1
    tp = int((fired & truth).sum())
    denominator = int(fired.sum()) + int(truth.sum())
    return 2 * tp / denominator if denominator else 0.0


def precision_at(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float | None:
    reviewed = labels >= 0
    fired = probs[reviewed].astype(np.float32) > np.float32(threshold)
    return float((labels[reviewed][fired] == 1).mean()) if fired.any() else None


def every_cut(probs: np.ndarray) -> np.ndarray:
    """All thresholds that can matter for these scores: the scores, their neighbours, the ends."""
    values = np.unique(probs.astype(np.float32))
    near = np.concatenate([values, np.nextafter(values, np.float32(0)), np.nextafter(values, np.float32(1))])
    return np.unique(np.clip(np.concatenate([near, [0.0, 1.0]]), 0, 1).astype(np.float32))


@st.composite
def reviewed_data(draw, max_n: int = 30, max_k: int = 4):  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, max_k))
    # Coarse scores make ties (equal scores) frequent, the case where cuts go wrong.
    grid = draw(st.sampled_from([None, 10, 100]))
    probs = draw(arrays(np.float64, (n, k), elements=st.floats(0, 1, width=32)))
    if grid:
        probs = np.round(probs * grid) / grid
    labels = draw(arrays(np.int8, (n, k), elements=st.sampled_from([-1, 0, 1, 1])))
    prior = draw(arrays(np.float64, (k,), elements=st.floats(0.05, 0.95)))
    return labels, probs, prior


# ---------------------------------------------------------------- properties


@SETTINGS
@given(reviewed_data())
def test_unshrunk_cut_is_the_best_cut(data) -> None:  # type: ignore[no-untyped-def]
    labels, probs, prior = data
    tuned = tune_thresholds(labels, probs, prior=prior, min_count=1, shrink=0)
    for k, entry in enumerate(tuned.per_class):
        if entry.source == "prior":
            assert entry.positives == 0
            continue
        achieved = f1_at(labels[:, k], probs[:, k], tuned.thresholds[k])
        assert achieved >= f1_at(labels[:, k], probs[:, k], prior[k]) - 1e-12
        assert achieved >= max(f1_at(labels[:, k], probs[:, k], t) for t in every_cut(probs[:, k])) - 1e-12
        assert entry.f1 == pytest.approx(achieved)
        assert entry.best_threshold == entry.threshold


@SETTINGS
@given(reviewed_data(), st.integers(1, 6), st.floats(0.5, 40))
def test_shrinkage_and_min_count(data, min_count, shrink) -> None:  # type: ignore[no-untyped-def]
    labels, probs, prior = data
    tuned = tune_thresholds(labels, probs, prior=prior, min_count=min_count, shrink=shrink)
    assert tuned.thresholds.dtype == np.float32 and tuned.thresholds.shape == (labels.shape[1],)
    for k, entry in enumerate(tuned.per_class):
        positives = int((labels[:, k] == 1).sum())
        assert entry.positives == positives and entry.negatives == int((labels[:, k] == 0).sum())
        if positives < min_count:
            assert entry.source == "prior" and tuned.thresholds[k] == np.float32(prior[k])
            continue
        assert entry.source == "shrunk"
        expected = (positives * entry.best_threshold + shrink * np.float32(prior[k])) / (positives + shrink)
        assert tuned.thresholds[k] == pytest.approx(expected, abs=1e-6)
        # The shrunk cut lies between the best cut and the prior.
        low, high = sorted((entry.best_threshold, float(np.float32(prior[k]))))
        assert low - 1e-6 <= tuned.thresholds[k] <= high + 1e-6


@SETTINGS
@given(reviewed_data(), st.floats(0.3, 1.0))
def test_precision_target_is_the_lowest_cut_reaching_it(data, min_precision) -> None:  # type: ignore[no-untyped-def]
    labels, probs, prior = data
    tuned = tune_thresholds(labels, probs, target="precision", min_precision=min_precision,
                            prior=prior, min_count=1, shrink=0)
    for k, entry in enumerate(tuned.per_class):
        reaching = [t for t in every_cut(probs[:, k])
                    if (p := precision_at(labels[:, k], probs[:, k], t)) is not None and p >= min_precision - 1e-12]
        if entry.source == "prior":
            assert entry.positives == 0 or not reaching
            continue
        assert precision_at(labels[:, k], probs[:, k], tuned.thresholds[k]) >= min_precision - 1e-12
        # No lower cut fires more reviewed samples and still reaches the precision
        # (unreviewed cells have no say in where the cut goes).
        scores = probs[labels[:, k] >= 0, k].astype(np.float32)
        fired = scores > tuned.thresholds[k]
        for t in reaching:
            assert (scores > np.float32(t)).sum() <= fired.sum()


@SETTINGS
@given(reviewed_data(), st.randoms(use_true_random=False))
def test_unreviewed_cells_and_sample_order_do_not_matter(data, rnd) -> None:  # type: ignore[no-untyped-def]
    labels, probs, prior = data
    tuned = tune_thresholds(labels, probs, prior=prior, min_count=1, shrink=3)
    # Scrambling the scores of unreviewed cells and shuffling the samples changes nothing.
    scrambled = probs.copy()
    scrambled[labels < 0] = np.array([rnd.random() for _ in range(int((labels < 0).sum()))])
    perm = np.array(rnd.sample(range(len(labels)), len(labels)))
    again = tune_thresholds(labels[perm], scrambled[perm], prior=prior, min_count=1, shrink=3)
    np.testing.assert_array_equal(tuned.thresholds, again.thresholds)
    assert tuned.per_class == again.per_class


@SETTINGS
@given(reviewed_data())
def test_reported_metrics_are_those_at_the_written_threshold(data) -> None:  # type: ignore[no-untyped-def]
    labels, probs, prior = data
    tuned = tune_thresholds(labels, probs, prior=prior, min_count=2, shrink=5)
    for k, entry in enumerate(tuned.per_class):
        reviewed = labels[:, k] >= 0
        fired = probs[reviewed, k].astype(np.float32) > tuned.thresholds[k]
        truth = labels[reviewed, k] == 1
        tp = int((fired & truth).sum())
        assert entry.precision == (tp / fired.sum() if fired.any() else None)
        assert entry.recall == (tp / truth.sum() if truth.any() else None)
        assert entry.threshold == float(tuned.thresholds[k])


# ---------------------------------------------------------------- examples


def test_separable_class_gets_a_cut_between_the_groups() -> None:
    labels = np.array([[1, 1], [1, 0], [1, -1], [0, 1], [0, 0], [0, 0]])
    probs = np.array([[0.9, 0.2], [0.7, 0.9], [0.6, 0.5], [0.4, 0.3], [0.3, 0.1], [0.1, 0.95]])
    tuned = tune_thresholds(labels, probs, prior=[0.8, 0.5], min_count=3, shrink=0)
    first, second = tuned.per_class
    assert first.source == "tuned" and format_threshold(first.threshold) == "0.5"
    assert (first.precision, first.recall, first.f1) == (1.0, 1.0, 1.0)
    assert second.source == "prior" and second.positives == 2 and second.negatives == 3
    assert tuned.thresholds[1] == np.float32(0.5)


def test_ties_on_a_score_never_sit_on_the_cut() -> None:
    # Three samples share 0.5; positives above, negatives below: the cut must not be 0.5 itself
    # unless every tied sample belongs on the same side.
    labels = np.array([[1], [1], [1], [1], [0], [0]])
    probs = np.array([[0.9], [0.5], [0.5], [0.5], [0.2], [0.1]])
    tuned = tune_thresholds(labels, probs, min_count=1, shrink=0)
    assert 0.2 < tuned.thresholds[0] < 0.5 and tuned.per_class[0].f1 == 1.0


def test_neighbouring_float32_scores_are_still_separated() -> None:
    low = np.float32(0.3)
    high = np.nextafter(low, np.float32(1))
    tuned = tune_thresholds(np.array([[0], [1]]), np.array([[low], [high]], dtype=np.float32), min_count=1, shrink=0)
    assert tuned.per_class[0].f1 == 1.0 and tuned.thresholds[0] == low


def test_precision_target_that_cannot_be_reached_keeps_the_prior() -> None:
    labels = np.array([[0], [1], [0], [1], [1]])
    probs = np.array([[0.99], [0.6], [0.5], [0.4], [0.3]])
    tuned = tune_thresholds(labels, probs, target="precision", min_precision=1.0, prior=0.7, min_count=1)
    assert tuned.per_class[0].source == "prior" and "precision" in tuned.per_class[0].note
    relaxed = tune_thresholds(labels, probs, target="precision", min_precision=0.6, prior=0.7, min_count=1, shrink=0)
    assert format_threshold(relaxed.thresholds[0]) == "0.15"  # fire all: 3 of 5 positives


def test_write_produces_the_official_file_and_a_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    labels = np.array([[1, 0], [1, 0], [0, 1], [0, -1]])
    probs = np.array([[0.8, 0.3], [0.7, 0.2], [0.2, 0.9], [0.1, 0.5]])
    tuned = tune_thresholds(labels, probs, prior=[0.65, 0.68], min_count=2, shrink=2)
    out = tuned.write(tmp_path / "thresholds.txt", names=["dog", "cat"])
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(float(x) == pytest.approx(t) for x, t in zip(lines, tuned.thresholds))
    np.testing.assert_array_equal(read_thresholds(out, 2), tuned.thresholds)
    report = json.loads((tmp_path / "thresholds.txt.report.json").read_text())
    assert report["sources"] == {"tuned": 0, "shrunk": 1, "prior": 1}
    assert [c["name"] for c in report["classes"]] == ["dog", "cat"]
    assert report["classes"][0]["positives"] == 2 and report["classes"][1]["source"] == "prior"
    with pytest.raises(ValueError, match="names"):
        tuned.write(tmp_path / "other.txt", names=["dog"])
    assert not (tmp_path / "other.txt").exists()


@pytest.mark.parametrize(
    ("labels", "probs", "kwargs", "message"),
    [
        ([[2]], [[0.5]], {}, "only 1"),
        ([[1, 0]], [[0.5]], {}, "shape"),
        ([1, 0], [0.5, 0.2], {}, "2-D"),
        ([[1]], [[1.5]], {}, r"\[0, 1\]"),
        ([[1]], [[float("nan")]], {}, "NaN"),
        ([[1]], [[0.5]], {"target": "recall"}, "target"),
        ([[1]], [[0.5]], {"target": "precision"}, "min_precision"),
        ([[1]], [[0.5]], {"min_precision": 0.9}, "only to target"),
        ([[1]], [[0.5]], {"prior": [0.5, 0.5]}, "prior"),
        ([[1]], [[0.5]], {"shrink": -1}, "shrink"),
        ([[1]], [[0.5]], {"min_count": -1}, "min_count"),
    ],
)
def test_bad_input_is_a_clear_error(labels, probs, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        tune_thresholds(np.array(labels), np.array(probs), **kwargs)


def test_nan_on_unreviewed_cells_is_fine() -> None:
    tuned = tune_thresholds(np.array([[1, -1], [0, -1]]), np.array([[0.9, np.nan], [0.1, np.nan]]), min_count=1)
    assert isinstance(tuned, TunedThresholds) and tuned.per_class[1].source == "prior"
