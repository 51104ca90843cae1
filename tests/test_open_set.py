"""Open-set classes (issue 20): names outside RAM's tags scored from CLIP text embeddings.

Real `transformers` CLIP text model (tiny random config, `random:tiny`), real engine and CLI.
The exactness checks feed a RAM tag's own `label_embed` rows as the "encoded descriptions":
what the official weights hold for its official descriptions.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ram_model import ConfigError, TaggingEngine
from ram_model.cli.main import main
from ram_model.errors import CheckpointNotFoundError
from ram_model.model.class_rows import pack_rows
from ram_model.text import MAX_OPEN_SET_CLASSES, load_text_encoder, template_descriptions
from ram_model.text.cache import embedding_cache_folder
from ram_model.text.open_classes import choose_class_texts

from conftest import make_image

PER_CLASS = 51


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("open_set_images")
    return [make_image(d / f"i{k}.png", seed=k) for k in range(3)]


@pytest.fixture(scope="module")
def engine(tiny_files) -> TaggingEngine:
    return TaggingEngine.from_config(tiny_files.engine_config(precision="fp32"))


def _own_rows(engine: TaggingEngine, tag: str) -> torch.Tensor:
    i = engine.vocab.index_of(tag)
    per = engine.model.label_embed.shape[0] // len(engine.vocab)
    return engine.model.label_embed.detach()[i * per:(i + 1) * per].clone()


def test_tiny_text_encoder_is_deterministic_unit_and_512_wide() -> None:
    encoder = load_text_encoder("random:tiny")
    texts = ["a photo of a dog.", "scratch on the bumper", "Ünïcode ©"]
    first = encoder.encode(texts)
    assert first.shape == (3, 512) and encoder.random_weights and encoder.identity.startswith("random:tiny")
    torch.testing.assert_close(first.norm(dim=1), torch.ones(3))
    from ram_model.text.tiny import build_tiny_text_encoder  # a second build: same weights and tokenizer

    tokenizer, model = build_tiny_text_encoder()
    with torch.no_grad():
        again = model(**tokenizer(texts[:1], return_tensors="pt")).text_embeds
    torch.testing.assert_close(again[0] / again[0].norm(), first[0], atol=1e-6, rtol=0)
    assert (first[0] - first[1]).abs().max() > 1e-3


def test_missing_clip_weights_are_one_line_naming_the_download(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError) as err:
        load_text_encoder("openai/clip-vit-base-patch16", cache_dir="/nonexistent-hf-cache")
    message = str(err.value)
    assert "\n" not in message and "hf download openai/clip-vit-base-patch16" in message


def test_own_rows_give_the_closed_set_scores_exactly(engine, images) -> None:
    tags = ["dog", "car", "beach", "hat"]
    closed = engine.restricted(tags).predict_proba(images)
    full = engine.predict_proba(images)[:, [engine.vocab.index_of(t) for t in tags]]
    view = engine.with_class_embeddings({t: _own_rows(engine, t) for t in tags})
    opened = view.predict_proba(images)
    assert np.abs(opened - closed).max() == 0.0  # the same rows through the same ops
    assert np.abs(opened - full).max() < 1e-6  # vs the 48-class forward: float reassociation only
    assert view.open_set_classes == tuple(tags) and view.model_version != engine.model_version
    # RAM tags left as None keep their own rows, Chinese names and class thresholds.
    mixed = engine.with_class_embeddings({"dog": None, "car": _own_rows(engine, "car")})
    assert mixed.open_set_classes == ("car",)
    assert mixed.vocab.thresholds[0] == engine.vocab.thresholds[engine.vocab.index_of("dog")]
    assert mixed.vocab.thresholds[1] == 0.5 and mixed.vocab.names_zh[1] == ""


def test_any_number_of_descriptions_per_class_no_count_by_division(engine, images) -> None:
    """Padding to the longest class is masked out of the softmax: a class scores the same
    next to classes with 1 or 63 descriptions as alone."""
    rng = torch.Generator().manual_seed(3)
    groups = {f"class {n}": torch.nn.functional.normalize(torch.randn(n, 512, generator=rng), dim=1)
              for n in (1, 3, 63)}
    together = engine.with_class_embeddings({**groups, "dog": _own_rows(engine, "dog")}).predict_proba(images)
    for col, (name, rows) in enumerate(groups.items()):
        alone = engine.with_class_embeddings({name: rows}).predict_proba(images)[:, 0]
        assert np.abs(together[:, col] - alone).max() < 1e-6, name
    dog = engine.restricted(["dog"]).predict_proba(images)[:, 0]
    assert np.abs(together[:, 3] - dog).max() < 1e-6
    packed = pack_rows(list(groups.values()))
    assert packed.rows.shape == (3 * 63, 512) and packed.mask.sum(dim=1).tolist() == [1, 3, 63]


def test_ram_averages_the_descriptions_into_one_row(tiny_files_ram, images) -> None:
    ram = TaggingEngine.from_config(tiny_files_ram.engine_config(precision="fp32"))
    with torch.no_grad():  # official RAM rows are unit CLIP embeddings; make the tiny ones so too
        ram.model.label_embed.copy_(torch.nn.functional.normalize(ram.model.label_embed, dim=1))
    tags = ["dog", "tree"]
    closed = ram.restricted(tags).predict_proba(images)
    # Copies of the tag's row (n descriptions that agree) average back to the row itself.
    view = ram.with_class_embeddings({t: _own_rows(ram, t).repeat(5, 1) for t in tags})
    assert np.abs(view.predict_proba(images) - closed).max() < 1e-6


def test_open_set_engine_from_templates_and_from_a_descriptions_file(tiny_files, images, tmp_path) -> None:
    cache = tmp_path / "cache"
    base = tiny_files.engine_config(precision="fp32", text_encoder="random:tiny", cache_dir=str(cache))
    engine = TaggingEngine.from_config(dataclasses.replace(base, classes=("dog", "scratch on the bumper"),
                                                           open_set=True))
    assert engine.vocab.names == ("dog", "scratch on the bumper") and engine.open_set_classes == ("scratch on the bumper",)
    assert engine.random_weights and engine.model_version.startswith("random-") and "-open" in engine.model_version
    assert engine.info()["open_set_classes"] == ["scratch on the bumper"]
    probs = engine.predict_proba(images)
    assert probs.shape == (3, 2) and np.isfinite(probs).all()
    cached = list(embedding_cache_folder(str(cache)).glob("*.safetensors"))
    assert len(cached) == 1
    # The templates are what an explicit description list of them gives.
    file = tmp_path / "descriptions.json"
    file.write_text(json.dumps([{"scratch on the bumper": template_descriptions("scratch on the bumper")},
                                {"person without helmet": ["a worker with no hard hat", "a bare head"]}]))
    from_file = TaggingEngine.from_config(dataclasses.replace(base, descriptions=str(file)))
    assert from_file.vocab.names == ("scratch on the bumper", "person without helmet")
    assert np.abs(from_file.predict_proba(images)[:, 0] - probs[:, 1]).max() < 1e-6


def test_embeddings_come_from_the_disk_cache_the_second_time(tiny_files, images, tmp_path, monkeypatch) -> None:
    config = tiny_files.engine_config(precision="fp32", text_encoder="random:tiny", cache_dir=str(tmp_path),
                                      classes=("rusty hinge",), open_set=True)
    first = TaggingEngine.from_config(config).predict_proba(images)
    from ram_model.text.encoder import TextEncoder

    def refuse(self, texts, **kwargs):
        raise AssertionError("encoded again despite the cache")

    monkeypatch.setattr(TextEncoder, "encode", refuse)
    again = TaggingEngine.from_config(config).predict_proba(images)
    assert np.array_equal(first, again)


def test_bad_input_gets_one_line_errors(tiny_files, tmp_path) -> None:
    base = tiny_files.engine_config(precision="fp32", text_encoder="random:tiny", cache_dir=str(tmp_path))

    def build(**kw) -> str:
        with pytest.raises(ConfigError) as err:
            TaggingEngine.from_config(dataclasses.replace(base, **kw))
        assert "\n" not in str(err.value)
        return str(err.value)

    bad = tmp_path / "bad.json"
    bad.write_text("dog: [a dog]")
    assert "is not JSON" in build(descriptions=str(bad))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"dog": ["a dog"], "rust": []}))
    assert "'rust' has an empty description list" in build(descriptions=str(empty))
    twice = tmp_path / "twice.json"
    twice.write_text('{"rust": ["rust"], "rust": ["more rust"]}')
    assert "appears twice" in build(descriptions=str(twice))
    assert "given twice" in build(classes=("rust", "dog", "rust"), open_set=True)
    assert "given twice" in build(classes=("Rusty hinge", "rusty  hinge"), open_set=True)
    assert "--open-set" in build(classes=("dog", "rusty hinge"))
    assert "needs --classes" in build(open_set=True)
    with pytest.raises(ConfigError, match=f"at most {MAX_OPEN_SET_CLASSES}"):
        choose_class_texts([f"c{i}" for i in range(MAX_OPEN_SET_CLASSES + 1)], TaggingEngine.from_config(base).vocab,
                           {}, open_set=True, templates=template_descriptions)


def test_ten_thousand_open_set_classes_work(engine, images) -> None:
    """10k classes fit in memory (the bench measures it at 63 descriptions each); above
    MAX_OPEN_SET_CLASSES the error above asks to split the run."""
    rows = torch.nn.functional.normalize(torch.randn(10_000, 2, 512, generator=torch.Generator().manual_seed(5)), dim=2)
    view = engine.with_class_embeddings({f"thing number {i}": rows[i] for i in range(10_000)})
    probs = view.predict_proba(images[:1])
    assert probs.shape == (1, 10_000) and np.isfinite(probs).all() and len(set(probs[0].round(6))) > 100
    assert view.vocab.names[-1] == "thing number 9999" and (view.vocab.thresholds == 0.5).all()


def test_cli_scores_tags_and_open_set_names_and_marks_them(images, tmp_path, capsys) -> None:
    out = tmp_path / "tags.jsonl"
    argv = ["tag", str(images[0]), "--checkpoint", "random:tiny", "--text-encoder", "random:tiny", "--open-set",
            "--classes", "dog,scratch on the bumper", "--all-scores", "--precision", "fp32", "--no-progress",
            "--output", str(out)]
    assert main(argv) == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert set(row["scores"]) == {"dog", "scratch on the bumper"} and row["random_weights"] is True
    assert row["open_set_classes"] == ["scratch on the bumper"] and "-open" in row["model_version"]
    # The open-set class's threshold (0.5) is tuned like any tag's; a fired open-set tag is marked.
    out2 = tmp_path / "tuned.jsonl"
    assert main([*argv[:-1], str(out2), "--tag-threshold", "scratch on the bumper=0"]) == 0
    fired = json.loads(out2.read_text())["tags"]
    assert {"name": "scratch on the bumper", "open_set": True}.items() <= next(
        t for t in fired if t["name"] == "scratch on the bumper").items()
    capsys.readouterr()
    assert main(["tag", str(images[0]), "--checkpoint", "random:tiny", "--classes", "dog,rusty hinge",
                 "--no-progress"]) == 2
    assert "--open-set" in capsys.readouterr().err
