"""Disagreement scoring and ranking on small hand-checked arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ram_model.review import (aggregate_sample_scores, calibrate_per_class, centred_probabilities,
                              estimate_noise_rate, estimate_thresholds, expected_f1_cut, find_disagreements,
                              flip_posteriors, rank_for_review, tag_error_scores)

# Three labels: 0 dog, 1 grass, 2 frisbee.
LABELS = [{0, 1}, {0, 1, 2}, {1}, {0, 1}]
PROBS = np.array(
    [
        [0.97, 0.90, 0.99],  # frisbee missing (model very sure)
        [0.95, 0.80, 0.03],  # frisbee labelled but the model is sure it is not there: doubtful
        [0.10, 0.90, 0.05],  # agrees
        [0.92, 0.60, 0.55],  # frisbee borderline missing
    ]
)


def posterior(present: bool, prob: float, *, labels: list[set[int]], num_labels: int, rate: float = 0.1) -> float:
    """The tag-flip posterior of docs/review.md, written out for one tag (threshold 0.5)."""
    tags = sum(len(x) for x in labels) / len(labels)
    drop = min(rate * 1.5 * 0.5 / max(tags, 0.5), 0.5)
    add = min(rate * 1.5 * 0.5 / max(num_labels - tags, 0.5), 0.5)
    odds = add / (1 - drop) * (1 - prob) / prob if present else drop / (1 - add) * prob / (1 - prob)
    return odds / (1 + odds)


def expect(present: bool, prob: float) -> float:
    return posterior(present, prob, labels=LABELS, num_labels=3)


class TestFindDisagreements:
    def test_known_missing_tag_is_flagged_missing(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert [(i.label_index, i.kind) for i in report.missing[0]] == [(2, "missing")]
        assert report.missing[0][0].score == pytest.approx(expect(False, 0.99))
        assert report.missing[0][0].probability == pytest.approx(0.99)
        assert report.doubtful[0] == []
        assert (report.flag_at, report.noise_rate) == (0.5, 0.1)  # too few samples to estimate either

    def test_known_wrong_tag_is_flagged_doubtful(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert [(i.label_index, i.kind) for i in report.doubtful[1]] == [(2, "doubtful")]
        assert report.doubtful[1][0].score == pytest.approx(expect(True, 0.03))
        assert report.missing[1] == []

    def test_tag_scores_are_the_flip_posteriors(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        expected = [[expect(2 in LABELS[r] if c == 2 else c in LABELS[r], PROBS[r, c]) for c in range(3)] for r in range(4)]
        np.testing.assert_allclose(report.tag_scores, expected)
        np.testing.assert_allclose(report.tag_scores, flip_posteriors(LABELS, PROBS))
        no_error = np.prod(1 - np.array(expected), axis=1)
        np.testing.assert_allclose(report.sample_scores, 1 - no_error)

    def test_agreeing_sample_has_no_flags(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert report.missing[2] == [] and report.doubtful[2] == []
        assert report.sample_scores[2] < 0.05

    def test_ranking_order(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert report.top(4).tolist() == [0, 1, 3, 2]
        assert report.top(2).tolist() == [0, 1]

    def test_threshold_moves_the_decision(self) -> None:
        # With a RAM-like threshold of 0.9 for frisbee, 0.99 is only mild support for "present",
        # while 0.03 is even stronger evidence against it.
        report = find_disagreements(LABELS, PROBS, thresholds=[0.5, 0.5, 0.9])
        assert report.missing[0] == []
        assert [i.label_index for i in report.doubtful[1]] == [2]

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
        assert summary.missing.tolist() == [0, 0, 1]
        assert summary.doubtful.tolist() == [0, 0, 1]
        rows = json.loads(json.dumps(summary.to_dict(["dog", "grass", "frisbee"])))
        assert rows[2] == {
            "label_index": 2,
            "label": "frisbee",
            "mapped": True,
            "labelled": 1,
            "missing": 1,
            "doubtful": 1,
            "missing_rate": pytest.approx(1 / 3),
            "doubtful_rate": 1.0,
        }

    def test_flagged_sample_scores_above_flag_at(self) -> None:
        report = find_disagreements(LABELS, PROBS)
        assert any(report.issues(row) for row in range(len(LABELS)))
        for row in range(len(LABELS)):
            if report.issues(row):
                assert report.sample_scores[row] > report.flag_at

    def test_issues_merges_kinds_best_first(self) -> None:
        report = find_disagreements([{2}], np.array([[0.999, 0.98, 0.01]]))
        assert [(i.label_index, i.kind) for i in report.issues(0)] == [(0, "missing"), (2, "doubtful"), (1, "missing")]

    def test_empty_input(self) -> None:
        report = find_disagreements([], np.zeros((0, 3)))
        assert report.sample_scores.shape == (0,)
        assert report.top(5).tolist() == []


def flipped_dataset(seed: int, n: int = 300, k: int = 12, flips: int = 30, prior: float = 0.2):  # type: ignore[no-untyped-def]
    """Labels with known flips (one tag in each of ``flips`` samples) and calibrated probabilities:
    scores z ~ N(+-2, 1) for present/absent tags, p = P(present | z)."""
    rng = np.random.default_rng(seed)
    clean = rng.random((n, k)) < prior
    z = rng.normal(np.where(clean, 2.0, -2.0), 1.0)
    probs = 1 / (1 + np.exp(-(4.0 * z + np.log(prior / (1 - prior)))))
    noisy = clean.copy()
    noisy[rng.choice(n, flips, replace=False), rng.integers(0, k, flips)] ^= True
    return noisy, probs, noisy != clean


class TestNoiseModel:
    def test_flipped_samples_rank_above_clean_ones(self) -> None:
        noisy, probs, wrong = flipped_dataset(0)
        report = find_disagreements(noisy, probs)
        is_error = wrong.any(axis=1)
        # Every erroneous sample outscores most clean ones (a rank statistic, no sklearn needed).
        errors, clean = report.sample_scores[is_error], report.sample_scores[~is_error]
        auroc = (errors[:, None] > clean[None, :]).mean()
        assert auroc > 0.95
        flagged = report.tag_scores > report.flag_at
        assert (flagged & wrong).sum() > 0.7 * flagged.sum()  # most flags are real errors
        assert (flagged & wrong).sum() > 0.5 * wrong.sum()  # and they find most errors
        assert 0.04 <= report.noise_rate <= 0.25  # truly 30 of 300 samples: within a factor of 2.5

    def test_deterministic_and_order_free(self) -> None:
        noisy, probs, _ = flipped_dataset(1)
        a, b = find_disagreements(noisy, probs), find_disagreements(noisy, probs)
        np.testing.assert_array_equal(a.sample_scores, b.sample_scores)
        assert (a.flag_at, a.noise_rate) == (b.flag_at, b.noise_rate)
        perm = np.random.default_rng(3).permutation(len(noisy))
        c = find_disagreements(noisy[perm], probs[perm])
        assert c.noise_rate == a.noise_rate
        np.testing.assert_allclose(c.sample_scores, a.sample_scores[perm])

    def test_clean_data_give_a_low_noise_rate_and_few_flags(self) -> None:
        noisy, probs, wrong = flipped_dataset(2, flips=0)
        assert not wrong.any()
        report = find_disagreements(noisy, probs)
        assert report.noise_rate == estimate_noise_rate(noisy, probs) <= 0.01
        assert (report.tag_scores > report.flag_at).sum() <= 3

    def test_absent_tag_is_likelier_wrong_than_present_tag_in_sparse_labels(self) -> None:
        # One tag out of twenty per sample: a dropped tag hides among 1, an added one among 19.
        labels = [{0}, {1}] * 5
        probs = np.full((10, 20), 0.05)
        probs[np.arange(10), [0, 1] * 5] = 0.95
        probs[0, 5] = 0.9  # absent, the model says present
        probs[1, 1] = 0.1  # present, the model says absent: the same likelihood ratio
        report = find_disagreements(labels, probs)
        assert report.tag_scores[0, 5] > 5 * report.tag_scores[1, 1]

    def test_fixed_noise_rate_scales_the_posteriors(self) -> None:
        low = find_disagreements(LABELS, PROBS, noise_rate=0.01)
        high = find_disagreements(LABELS, PROBS, noise_rate=0.4)
        assert (low.tag_scores < high.tag_scores).all() and low.noise_rate == 0.01
        assert low.top(4).tolist()[0] == high.top(4).tolist()[0] == 0


class TestCalibration:
    def test_a_timid_model_is_recalibrated_per_class(self) -> None:
        noisy, probs, wrong = flipped_dataset(4)
        logit = np.log(probs) - np.log1p(-probs)
        timid = 1 / (1 + np.exp(-logit / 4))  # same ranking, four times less sure
        raw = find_disagreements(noisy, timid, calibrate=False)
        calibrated = find_disagreements(noisy, timid)
        assert raw.noise_rate < 0.02  # weak likelihood ratios: the errors look like model doubt
        assert 0.04 <= calibrated.noise_rate <= 0.25  # truly 0.1
        flagged = calibrated.tag_scores > calibrated.flag_at
        hits = (flagged & wrong).sum()
        assert hits > 0.7 * flagged.sum() and hits >= 0.4 * wrong.sum()
        assert ((raw.tag_scores > raw.flag_at) & wrong).sum() < hits

    def test_calibrated_input_stays_about_as_good(self) -> None:
        noisy, probs, wrong = flipped_dataset(5)
        is_error = wrong.any(axis=1)

        def auroc(scores: np.ndarray) -> float:
            return float((scores[is_error][:, None] > scores[~is_error][None, :]).mean())

        on = find_disagreements(noisy, probs).sample_scores
        off = find_disagreements(noisy, probs, calibrate=False).sample_scores
        assert auroc(on) > auroc(off) - 0.01

    def test_rare_classes_and_missing_values_are_left_alone(self) -> None:
        labels = np.zeros((60, 3), dtype=bool)
        labels[:30, 0] = True
        labels[:3, 1] = True  # 3 positives: too few to fit
        centred = np.random.default_rng(0).uniform(0.05, 0.95, size=(60, 3))
        centred[::7, 0] = np.nan
        out = calibrate_per_class(labels, centred)
        np.testing.assert_array_equal(out[:, 1:], centred[:, 1:])
        assert np.isnan(out[::7, 0]).all() and not np.isnan(np.delete(out[:, 0], np.s_[::7])).any()


class TestExpectedF1Cut:
    def test_flags_the_set_with_the_best_expected_f1(self) -> None:
        posteriors = np.array([0.9, 0.8, 0.3, 0.05, 0.01, np.nan])
        cut = expected_f1_cut(posteriors)
        chosen = np.nan_to_num(posteriors) > cut
        total = np.nansum(posteriors)
        best = max(2 * np.sort(np.nan_to_num(posteriors))[::-1][:m].sum() / (m + total) for m in range(1, 6))
        assert 2 * posteriors[chosen].sum() / (chosen.sum() + total) == pytest.approx(best)

    def test_no_posteriors_cut_at_half(self) -> None:
        assert expected_f1_cut(np.array([np.nan])) == 0.5 and expected_f1_cut(np.zeros(3)) == 0.5


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
        for rate in (0.0, 0.6, "high", True):
            with pytest.raises(ValueError, match="noise_rate"):
                find_disagreements([{0}], np.array([[0.5, 0.2]]), noise_rate=rate)


class TestScores:
    def test_centring_puts_threshold_at_half(self) -> None:
        centred = centred_probabilities(np.array([[0.65, 0.9, 0.3]]), thresholds=[0.65, 0.9, 0.3])
        np.testing.assert_allclose(centred, 0.5)

    def test_tag_error_scores_are_complements(self) -> None:
        probs = np.array([[0.8, 0.8]])
        scores = tag_error_scores([{0}], probs)
        np.testing.assert_allclose(scores, [[0.2, 0.8]])

    def test_sample_score_is_any_tag_wrong(self) -> None:
        scores = np.array([[0.9, 0.5, 0.1], [0.6, 0.6, 0.6], [np.nan, np.nan, np.nan]])
        np.testing.assert_allclose(aggregate_sample_scores(scores), [1 - 0.1 * 0.5 * 0.9, 1 - 0.4**3, 0.0])
        with pytest.raises(ValueError, match="2-D"):
            aggregate_sample_scores(np.array([0.5]))


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
        # At 0.5, the labelled samples of class 1 look the most suspicious...
        assert set(fixed.top(3).tolist()) == {0, 1, 2}
        # ...on the class's own scale, sample 3 (class 1 missing) comes first and they look fine.
        assert estimated.top(1).tolist() == [3] and np.argmax(estimated.tag_scores[3]) == 1
        assert (estimated.tag_scores[:3, 1] < fixed.tag_scores[:3, 1] / 2).all()
