"""Restricted vocabulary: computing only some classes gives the full model's scores for them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ram_model import TaggingEngine
from ram_model.errors import ConfigError
from ram_model.inference.thresholds import ThresholdPolicy


def _paths(image_dir: Path) -> list[str]:
    return sorted(str(p) for p in image_dir.rglob("*.*"))


@pytest.fixture(scope="module", params=["ram_plus", "ram"])
def full_engine(request: pytest.FixtureRequest) -> TaggingEngine:
    files = request.getfixturevalue("tiny_files" if request.param == "ram_plus" else "tiny_files_ram")
    return TaggingEngine.from_config(files.engine_config(precision="fp32"))


def _chosen(engine: TaggingEngine) -> list[str]:
    names = engine.vocab.names
    return [names[40], names[3], names[17], names[3], names[0]]  # out of order, one repeated


def test_restricted_scores_equal_the_full_models(full_engine: TaggingEngine, image_dir: Path) -> None:
    paths = _paths(image_dir)
    full = full_engine.predict(paths, with_embedding=True)
    chosen = _chosen(full_engine)
    expected_names = tuple(dict.fromkeys(chosen))
    restricted = TaggingEngine.from_config(full_engine.config.__class__(
        **{**full_engine.config.__dict__, "classes": chosen}))
    assert restricted.classes == expected_names and restricted.vocab.names == expected_names
    assert restricted.info()["num_classes"] == 4 and restricted.info()["restricted"]
    assert restricted.info()["vocabulary_size"] == len(full_engine.vocab)
    assert full_engine.classes is None and not full_engine.info()["restricted"]
    assert restricted.model_version == full_engine.model_version
    rows = [full_engine.vocab.index_of(n) for n in expected_names]
    part = restricted.predict(paths, with_embedding=True)
    for f, p in zip(full, part):
        assert p.probs.shape == (4,)
        np.testing.assert_allclose(p.probs, f.probs[rows], rtol=0, atol=1e-5)
        np.testing.assert_allclose(p.embedding, f.embedding, rtol=0, atol=1e-5)
    for name, column in zip(expected_names, restricted.predict_proba(paths).T):
        np.testing.assert_allclose(column, full_engine.predict_proba(paths)[:, full_engine.vocab.index_of(name)],
                                   rtol=0, atol=1e-5)
    np.testing.assert_allclose(restricted.vocab.thresholds, full_engine.vocab.thresholds[rows])
    assert restricted.vocab.names_zh == tuple(full_engine.vocab.names_zh[i] for i in rows)
    np.testing.assert_allclose(restricted.tag_embeddings(), full_engine.tag_embeddings()[rows], atol=1e-6)


def test_restricted_view_shares_the_model_and_matches_the_config(full_engine: TaggingEngine,
                                                                 image_dir: Path) -> None:
    chosen = _chosen(full_engine)
    view = full_engine.restricted(chosen)
    assert view.model is full_engine.model and view._lock is full_engine._lock
    assert view._pool is full_engine._pool
    assert full_engine.classes is None and len(full_engine.vocab) == 48  # the base is untouched
    built = TaggingEngine.from_config(full_engine.config.__class__(
        **{**full_engine.config.__dict__, "classes": tuple(chosen)}))
    np.testing.assert_array_equal(view.predict_proba(_paths(image_dir)), built.predict_proba(_paths(image_dir)))
    assert view.restricted(None).classes is None
    again = view.restricted(full_engine.vocab.names[5:7])  # a view of a view indexes the full vocabulary
    assert again.classes == full_engine.vocab.names[5:7]


def test_fired_tags_are_the_full_models_within_the_classes(full_engine: TaggingEngine, image_dir: Path) -> None:
    paths = _paths(image_dir)
    full_probs = full_engine.predict_proba(paths)
    # the tiny random model fires little at the official thresholds: pick classes that fire somewhere
    policy = ThresholdPolicy(threshold=float(np.median(full_probs)))
    limits = policy.resolve(full_engine.vocab)
    ranked = np.argsort(-full_probs.max(axis=0))
    chosen = [full_engine.vocab.names[i] for i in (*ranked[:4], *ranked[-4:])]
    view = full_engine.restricted(chosen)
    view_limits = policy.resolve(view.vocab)
    fired_any = False
    for full_row, row in zip(full_probs, view.predict_proba(paths)):
        expected = {t.name for t in policy.select(full_row, full_engine.vocab, limits)} & set(chosen)
        got = {t.name for t in policy.select(row, view.vocab, view_limits)}
        assert got == expected
        fired_any |= bool(got)
    assert fired_any


def test_unknown_and_repeated_names(full_engine: TaggingEngine) -> None:
    names = full_engine.vocab.names
    with pytest.raises(ConfigError) as info:
        full_engine.restricted([names[0], names[1] + "x", "no such tag"])
    assert repr(names[1] + "x") in str(info.value) and "'no such tag'" in str(info.value)
    assert f"did you mean {names[1]!r}" in str(info.value)
    with pytest.raises(ConfigError):
        TaggingEngine.from_config(full_engine.config.__class__(
            **{**full_engine.config.__dict__, "classes": ("no such tag",)}))
    with pytest.raises(ConfigError):
        full_engine.config.__class__(**{**full_engine.config.__dict__, "classes": []})
    with pytest.raises(ConfigError):
        full_engine.config.__class__(**{**full_engine.config.__dict__, "classes": "dog"})
    config = full_engine.config.__class__(**{**full_engine.config.__dict__, "classes": [names[2], names[2]]})
    assert config.classes == (names[2],)


def test_vocabulary_subset(full_engine: TaggingEngine) -> None:
    vocab = full_engine.vocab
    sub = vocab.subset([vocab.names[9], vocab.names[1], vocab.names[9]])
    assert sub.names == (vocab.names[9], vocab.names[1]) and sub.index_of(vocab.names[1]) == 1
    assert sub.digest != vocab.digest and sub.digest == vocab.subset(sub.names).digest
    assert vocab.subset(reversed(vocab.names)).digest != vocab.digest  # the order is part of it
