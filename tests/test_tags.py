"""Vocabulary files and threshold semantics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ram_model import ConfigError, TagVocabulary, ThresholdPolicy
from ram_model.model.config import packaged_file


def test_official_vocabulary_ships_with_the_package() -> None:
    vocab = TagVocabulary.from_files()
    assert len(vocab) == 4585
    assert vocab.names[0] == "3D CG rendering" and vocab.names_zh[0] == "三维CG渲染"
    assert not any(n != n.strip() for n in vocab.names_zh)  # stray trailing spaces stripped
    assert vocab.index_of("dog") == vocab.names.index("dog")
    assert vocab.thresholds.dtype == np.float32 and 0 < vocab.thresholds.min() <= vocab.thresholds.max() <= 1
    assert (packaged_file("ram_tag_list_chinese.txt").read_text(encoding="utf-8").splitlines()[0]).endswith(" ")


def _vocab() -> TagVocabulary:
    return TagVocabulary(("dog", "cat", "car"), ("狗", "猫", "车"), np.array([0.5, 0.6, 0.7], dtype=np.float32))


def test_strict_threshold_and_order() -> None:
    vocab = _vocab()
    probs = np.array([0.5, 0.9, 0.71], dtype=np.float32)
    tags = ThresholdPolicy().select(probs, vocab)
    assert [(t.name, t.name_zh) for t in tags] == [("cat", "猫"), ("car", "车")]  # 0.5 is not > 0.5
    assert tags[0].score == pytest.approx(0.9)


def test_global_then_per_tag_overrides_and_top_k() -> None:
    vocab = _vocab()
    probs = np.array([0.55, 0.45, 0.35], dtype=np.float32)
    assert [t.name for t in ThresholdPolicy(threshold=0.4).select(probs, vocab)] == ["dog", "cat"]
    policy = ThresholdPolicy(threshold=0.4, per_tag={"cat": 0.5, "car": 0.3})
    np.testing.assert_allclose(policy.resolve(vocab), [0.4, 0.5, 0.3])
    assert [t.name for t in policy.select(probs, vocab)] == ["dog", "car"]
    assert [t.name for t in ThresholdPolicy(threshold=0.0, top_k=1).select(probs, vocab)] == ["dog"]


def test_bad_policies_are_rejected() -> None:
    with pytest.raises(ConfigError):
        ThresholdPolicy(threshold=1.5)
    with pytest.raises(ConfigError):
        ThresholdPolicy(top_k=0)
    with pytest.raises(ConfigError, match="not in the tag list"):
        ThresholdPolicy(per_tag={"unicorn": 0.2}).resolve(_vocab())


def test_threshold_file_errors(tmp_path: Path) -> None:
    tags = tmp_path / "t.txt"
    tags.write_text("a\nb\n")
    thr = tmp_path / "thr.txt"
    thr.write_text("0.5\nabc\n")
    with pytest.raises(ConfigError, match="line 2"):
        TagVocabulary.from_files(tags, None, thr)
    thr.write_text("0.5\n")
    vocab = TagVocabulary.from_files(tags, None, thr)
    np.testing.assert_allclose(vocab.thresholds, [0.5, 0.68])  # unlisted classes: the official 0.68
    assert vocab.names_zh == ("", "")


def test_english_and_chinese_output_from_the_engine(tiny_engine, image_dir: Path) -> None:
    probs = tiny_engine.predict_proba([image_dir / "img0.png"])[0]
    tags = ThresholdPolicy(threshold=0.0).select(probs, tiny_engine.vocab)
    by_name = {t.name: t for t in tags}
    assert by_name["dog"].name_zh == "狗" and by_name["cat"].name_zh == "猫"
    assert len(tags) == 48 and tags[0].score == pytest.approx(float(probs.max()))
