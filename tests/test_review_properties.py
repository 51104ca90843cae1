"""Invariants of the review core under random inputs (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ram_model.review import (
    build_label_mapping,
    estimate_thresholds,
    find_disagreements,
    normalize_tag,
    rank_for_review,
    select_review_batch,
    uncertainty_scores,
)
from ram_model.weights.testing import TINY_TAGS

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def labelled_probs(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, 6))
    probs = draw(arrays(np.float64, (n, k), elements=st.floats(0, 1)))
    nan_columns = draw(st.lists(st.integers(0, k - 1), max_size=k))
    probs[:, nan_columns] = np.nan
    labels = draw(arrays(np.bool_, (n, k)))
    thresholds = draw(st.one_of(st.none(), st.floats(0.05, 0.95), arrays(np.float64, (k,), elements=st.floats(0, 1))))
    return labels, probs, thresholds


@SETTINGS
@given(labelled_probs())
def test_scores_in_range_and_flags_consistent(data) -> None:  # type: ignore[no-untyped-def]
    labels, probs, thresholds = data
    report = find_disagreements(labels, probs, thresholds=thresholds)
    assert report.sample_scores.shape == (len(labels),)
    assert ((report.sample_scores >= 0) & (report.sample_scores <= 1)).all()
    finite = report.tag_scores[~np.isnan(report.tag_scores)]
    assert ((finite >= 0) & (finite <= 1)).all()
    for row in range(len(labels)):
        for issue in report.missing[row]:
            assert not labels[row, issue.label_index] and report.flag_at < issue.score <= 1
            assert not np.isnan(probs[row, issue.label_index])
        for issue in report.doubtful[row]:
            assert labels[row, issue.label_index] and report.flag_at < issue.score <= 1
        if report.issues(row):  # a sample with a flagged tag is at least that likely wrong
            assert report.sample_scores[row] >= max(issue.score for issue in report.issues(row))
    assert (report.class_summary.missing + report.class_summary.doubtful <= len(labels)).all()
    assert ((report.class_summary.missing_rate >= 0) & (report.class_summary.missing_rate <= 1)).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(50, 90), st.integers(1, 5), st.integers(0, 2**16))
def test_estimated_noise_rate_and_cut_stay_in_range(n, k, seed) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    labels = rng.random((n, k)) < rng.random()
    probs = rng.random((n, k))
    report = find_disagreements(labels, probs)
    assert 0.001 <= report.noise_rate <= 0.5 and 0 < report.flag_at < 1
    flagged = report.tag_scores > report.flag_at
    assert sum(map(len, report.missing)) + sum(map(len, report.doubtful)) == flagged.sum()


@SETTINGS
@given(labelled_probs(), st.integers(0, 11), st.integers(0, 5), st.floats(0.0, 1.0))
def test_surer_disagreement_never_lowers_a_sample_score(data, row, column, shift) -> None:  # type: ignore[no-untyped-def]
    labels, probs, thresholds = data
    row, column = row % len(labels), column % labels.shape[1]
    if np.isnan(probs[row, column]):
        return
    # Move the probability towards the answer the label does not give.
    surer = probs.copy()
    target = 0.0 if labels[row, column] else 1.0
    surer[row, column] += shift * (target - surer[row, column])
    before = find_disagreements(labels, probs, thresholds=thresholds, noise_rate=0.1)
    after = find_disagreements(labels, surer, thresholds=thresholds, noise_rate=0.1)
    assert after.sample_scores[row] >= before.sample_scores[row] - 1e-12


@SETTINGS
@given(labelled_probs(), st.randoms(use_true_random=False))
def test_ranking_stable_under_permutation_of_samples(data, rnd) -> None:  # type: ignore[no-untyped-def]
    labels, probs, thresholds = data
    perm = np.array(rnd.sample(range(len(labels)), len(labels)))
    a = find_disagreements(labels, probs, thresholds=thresholds)
    b = find_disagreements(labels[perm], probs[perm], thresholds=thresholds)
    # Each sample keeps its own score, so the ranked score sequence is identical...
    np.testing.assert_array_equal(a.sample_scores[perm], b.sample_scores)
    np.testing.assert_array_equal(a.sample_scores[a.top(len(labels))], b.sample_scores[b.top(len(labels))])
    # ...and the ranking itself maps through the permutation wherever scores are distinct.
    if len(np.unique(a.sample_scores)) == len(labels):
        np.testing.assert_array_equal(perm[b.top(len(labels))], a.top(len(labels)))


@SETTINGS
@given(labelled_probs(), st.randoms(use_true_random=False))
def test_estimated_thresholds_in_range_and_order_free(data, rnd) -> None:  # type: ignore[no-untyped-def]
    labels, probs, _ = data
    thresholds = estimate_thresholds(labels, probs, min_count=1)
    assert ((thresholds > 0) & (thresholds < 1)).all()
    perm = np.array(rnd.sample(range(len(labels)), len(labels)))
    np.testing.assert_allclose(estimate_thresholds(labels[perm], probs[perm], min_count=1), thresholds)


@SETTINGS
@given(arrays(np.float64, st.integers(0, 30), elements=st.floats(0, 1) | st.just(float("nan"))), st.integers(0, 40))
def test_rank_for_review_is_a_sorted_permutation(scores, top_n) -> None:  # type: ignore[no-untyped-def]
    order = rank_for_review(scores)
    assert sorted(order.tolist()) == list(range(len(scores)))
    ranked = scores[order]
    finite = ranked[~np.isnan(ranked)]
    assert (np.diff(finite) <= 0).all()
    assert np.isnan(ranked[len(finite) :]).all()
    assert rank_for_review(scores, top_n=top_n).tolist() == order[:top_n].tolist()


tag_names = st.text(alphabet=st.sampled_from("abcXYZ _-é"), min_size=1, max_size=12).filter(lambda s: normalize_tag(s))


@SETTINGS
@given(st.text(max_size=20))
def test_normalize_tag_idempotent(name: str) -> None:
    assert normalize_tag(normalize_tag(name)) == normalize_tag(name)


@SETTINGS
@given(st.lists(tag_names, min_size=1, max_size=8, unique=True))
def test_mapping_is_idempotent(labels: list[str]) -> None:
    ram = list(TINY_TAGS)
    first = build_label_mapping(labels, ram)
    again = build_label_mapping(list(first.labels), ram)
    assert again == first and again.digest == first.digest
    # Mapping the RAM names of mapped labels onto RAM gives back the same indices, exactly.
    mapped = [ram[idx[0]] for idx in first.ram_indices if idx]
    names_again = build_label_mapping(list(dict.fromkeys(mapped)), ram)
    assert all(how == "exact" for how in names_again.how)
    assert {idx[0] for idx in names_again.ram_indices} == {idx[0] for idx in first.ram_indices if idx}


def _plural(tag: str) -> str:
    return tag + ("es" if tag.endswith(("s", "x", "ch", "sh")) else "s")


@pytest.mark.parametrize("tag", TINY_TAGS)
def test_every_tiny_tag_is_found_under_common_spellings(tag: str) -> None:
    spellings = [tag.upper(), tag.title(), tag.replace(" ", "_"), _plural(tag), _plural(tag).title()]
    mapping = build_label_mapping(spellings, list(TINY_TAGS))
    assert mapping.ram_indices == ((TINY_TAGS.index(tag),),) * len(spellings)


@SETTINGS
@given(
    arrays(np.float64, st.tuples(st.integers(1, 15), st.integers(1, 4)), elements=st.floats(0, 1)),
    st.integers(0, 20),
    st.integers(0, 3),
)
def test_selection_is_deterministic_unique_and_sized(probs, n, seed) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(len(probs), 3))
    disagreement = rng.random(len(probs))
    kwargs = dict(disagreement=disagreement, probs=probs, embeddings=embeddings, seed=seed)
    a = select_review_batch(n, **kwargs)
    assert a.tolist() == select_review_batch(n, **kwargs).tolist()
    assert len(a) == min(n, len(probs)) and len(set(a.tolist())) == len(a)
    scores = uncertainty_scores(probs)
    assert ((scores >= 0) & (scores <= 1 + 1e-12)).all()
