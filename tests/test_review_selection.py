"""Review-batch selection: each strategy on arrays whose answer is known, and the mix."""

from __future__ import annotations

import numpy as np
import pytest

from ram_model.review import k_center_greedy, select_review_batch, uncertainty_scores

DISAGREEMENT = np.array([0.1, 0.95, 0.3, 0.8, 0.2, 0.6])
PROBS = np.array(
    [
        [0.50, 0.99],  # one tag exactly at threshold
        [0.99, 0.01],
        [0.52, 0.48],  # most uncertain overall
        [0.90, 0.50],  # one tag at threshold, one fairly sure
        [0.95, 0.05],
        [0.01, 0.02],
    ]
)
# Two tight clusters and one outlier.
EMBEDDINGS = np.array([[1, 0, 0], [0.99, 0.05, 0], [0, 1, 0], [0.02, 0.98, 0], [0, 0, 1], [0.98, 0, 0.05]], dtype=float)


class TestOneSignal:
    def test_disagreement_takes_highest_scores(self) -> None:
        assert select_review_batch(3, disagreement=DISAGREEMENT, weights={"disagreement": 1}).tolist() == [1, 3, 5]

    def test_uncertainty_takes_probabilities_nearest_threshold(self) -> None:
        assert select_review_batch(3, probs=PROBS, weights={"uncertainty": 1}).tolist() == [2, 3, 0]

    def test_uncertainty_respects_thresholds(self) -> None:
        # With a 0.9 threshold on tag 0, sample 3 has both tags exactly at their thresholds.
        picked = select_review_batch(1, probs=PROBS, thresholds=[0.9, 0.5], weights={"uncertainty": 1})
        assert picked.tolist() == [3]

    def test_diversity_covers_every_cluster_first(self) -> None:
        picked = select_review_batch(3, embeddings=EMBEDDINGS, weights={"diversity": 1}, seed=0)
        clusters = {0: "a", 1: "a", 5: "a", 2: "b", 3: "b", 4: "c"}
        assert {clusters[i] for i in picked.tolist()} == {"a", "b", "c"}

    def test_diversity_is_scale_invariant(self) -> None:
        scaled = EMBEDDINGS * np.array([[3.0], [0.5], [10.0], [1.0], [7.0], [2.0]])
        a = select_review_batch(4, embeddings=EMBEDDINGS, weights={"diversity": 1}, seed=3)
        b = select_review_batch(4, embeddings=scaled, weights={"diversity": 1}, seed=3)
        assert a.tolist() == b.tolist()


class TestMix:
    def test_default_mix_splits_between_all_signals_without_repeats(self) -> None:
        picked = select_review_batch(3, disagreement=DISAGREEMENT, probs=PROBS, embeddings=EMBEDDINGS, seed=0)
        assert picked[0] == 1  # the disagreement share comes first
        assert picked[1] == 2  # then the most uncertain sample not yet taken
        assert len(set(picked.tolist())) == 3
        # The diversity pick is the sample farthest from what was already chosen: the outlier.
        assert picked[2] == 4

    def test_weights_control_the_shares(self) -> None:
        picked = select_review_batch(
            4, disagreement=DISAGREEMENT, probs=PROBS, weights={"disagreement": 3, "uncertainty": 1}
        )
        assert picked.tolist()[:3] == [1, 3, 5]
        assert picked.tolist()[3] == 2

    def test_exclude_is_never_returned_and_counts_as_covered(self) -> None:
        picked = select_review_batch(2, embeddings=EMBEDDINGS, weights={"diversity": 1}, exclude=[0, 2])
        assert picked.tolist()[0] == 4  # cluster "c" is the only uncovered one
        assert not {0, 2} & set(picked.tolist())

    def test_returns_at_most_what_is_available(self) -> None:
        picked = select_review_batch(10, disagreement=DISAGREEMENT, probs=PROBS, embeddings=EMBEDDINGS, exclude=[0])
        assert sorted(picked.tolist()) == [1, 2, 3, 4, 5]

    def test_deterministic_given_seed(self) -> None:
        rng = np.random.default_rng(0)
        emb = rng.normal(size=(200, 16))
        dis = rng.random(200)
        a = select_review_batch(20, disagreement=dis, embeddings=emb, seed=5)
        b = select_review_batch(20, disagreement=dis, embeddings=emb, seed=5)
        assert a.tolist() == b.tolist()


class TestErrors:
    def test_missing_input_for_a_weighted_signal(self) -> None:
        with pytest.raises(ValueError, match="embeddings="):
            select_review_batch(2, disagreement=DISAGREEMENT, weights={"diversity": 1})

    def test_weight_for_absent_signal(self) -> None:
        with pytest.raises(ValueError, match="probs= is missing"):
            select_review_batch(2, disagreement=DISAGREEMENT, weights={"uncertainty": 1})

    def test_sizes_must_agree(self) -> None:
        with pytest.raises(ValueError, match="number of samples"):
            select_review_batch(2, disagreement=DISAGREEMENT, probs=PROBS[:3])

    def test_unknown_signal_and_no_inputs(self) -> None:
        with pytest.raises(ValueError, match="unknown weight keys"):
            select_review_batch(2, disagreement=DISAGREEMENT, weights={"best": 1})
        with pytest.raises(ValueError, match="at least one"):
            select_review_batch(2)

    def test_exclude_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="outside"):
            select_review_batch(2, disagreement=DISAGREEMENT, exclude=[6])


def test_uncertainty_scores_range_and_nan_columns() -> None:
    probs = np.array([[0.5, np.nan], [1.0, np.nan]])
    scores = uncertainty_scores(probs)
    assert scores[0] == pytest.approx(1.0)
    assert 0 <= scores[1] < 1e-3


def test_k_center_with_nothing_covered_starts_from_seed() -> None:
    starts = {int(k_center_greedy(EMBEDDINGS, 1, seed=seed)[0]) for seed in range(20)}
    assert len(starts) > 1
