"""Disagreement scoring and ranking on small hand-checked arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ram_model.review import (
    aggregate_sample_scores,
    centred_probabilities,
    estimate_thresholds,
    find_disagreements,
    rank_for_review,
    tag_error_scores,
)

# Three labels: 0 dog, 1 grass, 2 frisbee.
LABELS = [{0, 1}, {0, 1, 2}, {1}, {0, 1}]
PROBS = np.array(
    [
        [0.97, 0.90, 0.95],  # frisbee missing (model very sure)
        [0.95, 0.80, 0.03],  # frisbee labelled but the model is sure it is not there: doubtful
        [0.10, 0.90, 0.05],  # agrees
        [0.92, 0.60, 0.55],  # frisbee borderline missing
    ]
)


class TestFindDisagreements:
    def test_known_missing_tag_is_flagged_missing(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert [(i.label_index, i.kind) for i in report.missing[0]] == [(2, "missing")]
        assert report.missing[0][0].score == pytest.approx(0.95)
        assert report.missing[0][0].probability == pytest.approx(0.95)
        assert report.doubtful[0] == []

    def test_known_wrong_tag_is_flagged_doubtful(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert [(i.label_index, i.kind) for i in report.doubtful[1]] == [(2, "doubtful")]
        assert report.doubtful[1][0].score == pytest.approx(0.97)
        assert report.missing[1] == []

    def test_agreeing_sample_has_no_flags(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert report.missing[2] == [] and report.doubtful[2] == []
        assert report.sample_scores[2] < 0.5

    def test_ranking_order(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert report.top(4).tolist() == [1, 0, 3, 2]
        assert report.top(2).tolist() == [1, 0]

    def test_threshold_moves_the_decision(self) -> None:
        # With RAM-like threshold 0.9 for frisbee, 0.55 is no longer "missing" but 0.95 still is.
        report = find_disagreements(LABELS, PROBS, thresholds=[0.5, 0.5, 0.9])
        assert report.missing[3] == []
        assert [i.label_index for i in report.missing[0]] == [2]

    def test_flag_at_trades_recall_for_precision(self) -> None:
        strict = find_disagreements(LABELS, PROBS, flag_at=0.9)
        assert strict.missing[3] == []  # 0.55 is not sure enough
        assert [i.label_index for i in strict.missing[0]] == [2]

    def test_nan_columns_are_never_flagged(self) -> None:
        probs = PROBS.copy()
        probs[:, 2] = np.nan
        report = find_disagreements(LABELS, probs)
        assert all(i.label_index != 2 for issues in report.missing + report.doubtful for i in issues)
        assert not report.class_summary.mapped[2]
        assert np.isnan(report.tag_scores[:, 2]).all()

    def test_thresholds_of_zero_or_one_mean_no_opinion(self) -> None:
        report = find_disagreements(LABELS, PROBS, thresholds=[0.5, 0.5, 1.0])
        assert report.class_summary.missing[2] == 0 and report.class_summary.doubtful[2] == 0

    def test_bool_matrix_equals_index_sets(self) -> None:
        dense = np.zeros(PROBS.shape, dtype=bool)
        for row, labels in enumerate(LABELS):
            dense[row, list(labels)] = True
        a, b = find_disagreements(LABELS, PROBS), find_disagreements(dense, PROBS)
        np.testing.assert_array_equal(a.sample_scores, b.sample_scores)
        assert a.missing == b.missing and a.doubtful == b.doubtful

    def test_class_summary(self) -> None:
        summary = find_disagreements(LABELS, PROBS).class_summary
        assert summary.labelled.tolist() == [3, 4, 1]
        assert summary.missing.tolist() == [0, 0, 2]
        assert summary.doubtful.tolist() == [0, 0, 1]
        rows = json.loads(json.dumps(summary.to_dict(["dog", "grass", "frisbee"])))
        assert rows[2] == {
            "label_index": 2,
            "label": "frisbee",
            "mapped": True,
            "labelled": 1,
            "missing": 2,
            "doubtful": 1,
            "missing_rate": pytest.approx(2 / 3),
            "doubtful_rate": 1.0,
        }

    def test_sample_score_above_flag_at_iff_flagged(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        has_flag = np.array([bool(m or d) for m, d in zip(report.missing, report.doubtful, strict=True)])
        np.testing.assert_array_equal(report.sample_scores > 0.5, has_flag)

    def test_issues_merges_kinds_best_first(self) -> None:
        report = find_disagreements([{2}], np.array([[0.9, 0.6, 0.2]]))
        assert [(i.label_index, i.kind) for i in report.issues(0)] == [(0, "missing"), (2, "doubtful"), (1, "missing")]

    def test_empty_input(self) -> None:
        report = find_disagreements([], np.zeros((0, 3)))
        assert report.sample_scores.shape == (0,)
        assert report.top(5).tolist() == []


class TestInputErrors:
    @pytest.mark.parametrize(
        "labels, probs, error, message",
        [
            ([{0}], np.array([0.5, 0.5]), ValueError, "2-D"),
            ([{0}], np.array([[1.5, 0.2]]), ValueError, r"\[0, 1\]"),
            ([{0}, {1}], np.array([[0.5, 0.2]]), ValueError, "2 samples"),
            ([{5}], np.array([[0.5, 0.2]]), ValueError, "outside"),
            ([{"dog"}], np.array([[0.5, 0.2]]), TypeError, "integers"),
            ([0], np.array([[0.5, 0.2]]), TypeError, "iterable"),
            (np.array([[1, 0]]), np.array([[0.5, 0.2]]), ValueError, "astype"),
        ],
    )
    def test_bad_inputs(self, labels, probs, error, message) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(error, match=message):
            find_disagreements(labels, probs)

    def test_bad_thresholds_and_options(self) -> None:
        with pytest.raises(ValueError, match="shape"):
            find_disagreements([{0}], np.array([[0.5, 0.2]]), thresholds=[0.5])
        with pytest.raises(ValueError, match="flag_at"):
            find_disagreements([{0}], np.array([[0.5, 0.2]]), flag_at=0.3)
        with pytest.raises(ValueError, match="unknown aggregation"):
            find_disagreements([{0}], np.array([[0.5, 0.2]]), aggregation="mean")


class TestScores:
    def test_centring_puts_threshold_at_half(self) -> None:
        centred = centred_probabilities(np.array([[0.65, 0.9, 0.3]]), thresholds=[0.65, 0.9, 0.3])
        np.testing.assert_allclose(centred, 0.5)

    def test_tag_error_scores_are_complements(self) -> None:
        probs = np.array([[0.8, 0.8]])
        scores = tag_error_scores([{0}], probs)
        np.testing.assert_allclose(scores, [[0.2, 0.8]])

    def test_aggregations(self) -> None:
        scores = np.array([[0.9, 0.5, 0.1], [0.6, 0.6, 0.6]])
        np.testing.assert_allclose(aggregate_sample_scores(scores, method="max"), [0.9, 0.6])
        np.testing.assert_allclose(aggregate_sample_scores(scores, method="noisy_or", top_k=2), [0.95, 0.84])
        np.testing.assert_allclose(aggregate_sample_scores(scores, method="mean_top", top_k=2), [0.7, 0.6])


class TestRankForReview:
    def test_descending_with_ties_by_index(self) -> None:
        assert rank_for_review(np.array([0.5, 0.9, 0.5, 0.1])).tolist() == [1, 0, 2, 3]

    def test_nan_last_and_top_n(self) -> None:
        assert rank_for_review(np.array([np.nan, 0.2, 0.3]), top_n=2).tolist() == [2, 1]
        assert rank_for_review(np.array([np.nan, 0.2]), top_n=10).tolist() == [1, 0]

    @pytest.mark.parametrize("top_n", [-1, 1.5, True])
    def test_bad_top_n(self, top_n: object) -> None:
        with pytest.raises(ValueError, match="top_n"):
            rank_for_review(np.array([0.1]), top_n=top_n)  # type: ignore[arg-type]


class TestEstimateThresholds:
    def test_midpoint_between_labelled_and_unlabelled_means(self) -> None:
        labels = [{0}, {0}, {0}, set(), set(), set()]
        probs = np.array([[0.30], [0.40], [0.50], [0.05], [0.10], [0.15]])
        assert estimate_thresholds(labels, probs, min_count=3)[0] == pytest.approx(0.25)

    def test_fallback_for_rare_or_unmapped_classes(self) -> None:
        labels = [{0}, set(), set()]
        probs = np.array([[0.9, np.nan, 0.2], [0.1, np.nan, 0.3], [0.2, np.nan, 0.1]])
        out = estimate_thresholds(labels, probs, fallback=[0.7, 0.8, 0.6], min_count=2)
        np.testing.assert_allclose(out, [0.7, 0.8, 0.6])  # 1 positive < 2; NaN column; no positives

    def test_lets_a_low_scoring_class_be_judged_on_its_own_scale(self) -> None:
        # Class 1's probabilities are all low, but the labelled samples still score higher.
        labels = [{0, 1}, {0, 1}, {0, 1}, {0}, set(), set()]
        probs = np.array([[0.9, 0.30], [0.8, 0.35], [0.9, 0.32], [0.9, 0.33], [0.1, 0.05], [0.2, 0.04]])
        fixed = find_disagreements(labels, probs)
        estimated = find_disagreements(labels, probs, thresholds=estimate_thresholds(labels, probs, min_count=2))
        assert sum(map(len, fixed.doubtful)) == 3  # every label of class 1 looks doubtful at 0.5
        assert [i.label_index for i in estimated.missing[3]] == [1]  # sample 3 is missing class 1
        assert sum(map(len, estimated.doubtful)) == 0
