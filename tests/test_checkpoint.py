"""Checkpoint loading: every key of both official manifests is accounted for, errors name keys."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ram_model import CheckpointMismatchError, CheckpointNotFoundError, TaggingEngine
from ram_model.weights.checkpoint import (
    BUFFER_SUFFIXES,
    TRAINING_ONLY_PREFIXES,
    classify_keys,
    load_into,
    read_checkpoint,
    rename_legacy_keys,
    unwrap_state_dict,
)
from ram_model.model.config import HeadConfig, SwinConfig, packaged_file
from ram_model.weights.hub import parse_hf_uri, resolve_checkpoint
from ram_model.model.ram import RAMTagger
from ram_model.weights.testing import make_tiny_checkpoint, official_state_dict

# Key/shape manifests of the two official Swin-L checkpoints (every state-dict entry).
REFERENCE = Path(__file__).resolve().parent / "data"
MANIFESTS = {"ram_plus": "manifest_ram_plus_swin_l.json", "ram": "manifest_ram_swin_l.json"}


def _manifest(variant: str) -> list[tuple[str, tuple[int, ...], str]]:
    path = REFERENCE / MANIFESTS[variant]
    if not path.exists():
        pytest.skip(f"reference manifest {path} not available")
    return [(k, tuple(shape), dtype) for k, shape, dtype in json.loads(path.read_text())]


def _full_size_model(variant: str) -> RAMTagger:
    swin = SwinConfig.from_file(packaged_file("swin/config_swinL_384.json"))
    head = HeadConfig.from_file(packaged_file("q2l_config.json"))
    with torch.device("meta"):
        return RAMTagger(swin, head, 4585, variant)


@pytest.mark.filterwarnings("ignore:.*meta parameter")
@pytest.mark.parametrize("variant", ["ram_plus", "ram"])
def test_full_size_manifest_loads_strictly_and_every_key_is_accounted_for(variant: str) -> None:
    manifest = _manifest(variant)
    # Zero-stride tensors: the right shapes and dtypes without gigabytes of memory.
    sd = {k: torch.zeros((), dtype=getattr(torch, dtype)).expand(shape) for k, shape, dtype in manifest}
    model = _full_size_model(variant)
    report = load_into(model, sd)

    training = sorted(k for k, _, _ in manifest if k.startswith(TRAINING_ONLY_PREFIXES))
    buffers = sorted(k for k, _, _ in manifest
                     if not k.startswith(TRAINING_ONLY_PREFIXES) and k.rsplit(".", 1)[-1] in BUFFER_SUFFIXES)
    assert sorted(report.skipped_training_only) == training
    assert sorted(report.skipped_buffers) == buffers
    assert sorted(report.loaded) == sorted(model.state_dict())
    assert len(report.loaded) + len(training) + len(buffers) == len(manifest)
    if variant == "ram":
        assert len(training) > 400  # tag_encoder + text_decoder
    else:
        assert not training


@pytest.mark.parametrize("variant", ["ram_plus", "ram"])
def test_our_official_layout_writer_matches_the_manifest(variant: str) -> None:
    """The layout the tiny checkpoints use is exactly the official one at full size."""
    manifest = {k: shape for k, shape, _ in _manifest(variant) if not k.startswith(TRAINING_ONLY_PREFIXES)}
    ours = {k: tuple(v.shape) for k, v in official_state_dict(_full_size_model(variant)).items()}
    assert ours == manifest


def test_tiny_checkpoint_key_report(tiny_files_ram) -> None:
    engine = TaggingEngine.from_config(tiny_files_ram.engine_config())
    report = engine.load_report
    assert report.skipped_training_only and all(k.startswith(("tag_encoder.", "text_decoder."))
                                                for k in report.skipped_training_only)
    assert any(k.endswith("attn_mask") for k in report.skipped_buffers)
    assert any(k.endswith("relative_position_index") for k in report.skipped_buffers)
    assert report.ignored_top_level == ["epoch", "ram_annotate_random_weights"]


def test_legacy_vision_multi_prefix_loads_identically(tmp_path: Path, tiny_files) -> None:
    legacy = make_tiny_checkpoint(tmp_path, variant="ram_plus", seed=0, legacy_prefix=True)
    raw = torch.load(legacy.checkpoint, weights_only=True)["model"]
    assert any(k.startswith("vision_multi.") for k in raw)
    a = TaggingEngine.from_config(tiny_files.engine_config())
    b = TaggingEngine.from_config(legacy.engine_config())
    assert b.load_report.renamed
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x))


def test_bare_and_wrapped_state_dicts() -> None:
    t = torch.zeros(2)
    assert unwrap_state_dict({"model": {"a": t}, "optimizer": {}})[0] == {"a": t}
    assert unwrap_state_dict({"state_dict": {"a": t}})[0] == {"a": t}
    assert unwrap_state_dict({"a": t, "epoch": 3}) == ({"a": t}, ["epoch"])
    with pytest.raises(CheckpointMismatchError):
        unwrap_state_dict([t])


def test_rename_rules() -> None:
    out, renamed = rename_legacy_keys({"module.vision_multi.encoder.x": torch.zeros(1), "fc.weight": torch.zeros(1)})
    assert set(out) == {"tagging_head.encoder.x", "fc.weight"}
    assert renamed == [("module.vision_multi.encoder.x", "tagging_head.encoder.x")]


def test_missing_and_misshaped_keys_name_the_key_and_both_shapes(tiny_files) -> None:
    sd = torch.load(tiny_files.checkpoint, weights_only=True)["model"]
    model = TaggingEngine.from_config(tiny_files.engine_config()).model
    expected = model.state_dict()

    broken = dict(sd)
    del broken["tagging_head.encoder.layer.0.crossattention.self.key.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): tagging_head\.encoder\.layer\.0"):
        classify_keys(broken, expected)

    broken = dict(sd)
    broken["fc.weight"] = torch.zeros(1, 7)
    with pytest.raises(CheckpointMismatchError, match=r"fc\.weight: checkpoint \(1, 7\) vs model \(1, 64\)"):
        classify_keys(broken, expected)

    broken = dict(sd)
    broken["surprise.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match="unexpected keys.*surprise.weight"):
        classify_keys(broken, expected)


def test_vocabulary_size_mismatch_is_a_clear_error(tmp_path: Path, tiny_files) -> None:
    short = tmp_path / "tags.txt"
    short.write_text("dog\ncat\n")
    cfg = tiny_files.engine_config(tag_list=str(short), tag_list_zh=None, thresholds=None)
    with pytest.raises(CheckpointMismatchError, match="label_embed"):
        TaggingEngine.from_config(cfg)


def test_corrupt_checkpoint_file(tmp_path: Path, tiny_files) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(bad)


def test_pickled_objects_need_explicit_trust(tmp_path: Path, tiny_files) -> None:
    import argparse

    obj = torch.load(tiny_files.checkpoint, weights_only=True)
    obj["args"] = argparse.Namespace(lr=1.0)  # as training scripts often save
    path = tmp_path / "with_args.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointMismatchError, match="trust_pickle"):
        TaggingEngine.from_config(tiny_files.engine_config(checkpoint=str(path)))
    engine = TaggingEngine.from_config(tiny_files.engine_config(checkpoint=str(path), trust_pickle=True))
    assert engine.variant == "ram_plus"


def test_missing_checkpoint_and_offline_hub_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointNotFoundError, match="not a local file, a preset"):
        resolve_checkpoint(str(tmp_path / "nope.pth"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint("ram_plus_swin_large_14m", cache_dir=str(tmp_path / "hf"))
    message = str(info.value)
    assert "ram_plus_swin_large_14m.pth" in message
    assert "xinyu1205/recognize-anything-plus-model" in message
    assert "`hf download xinyu1205/recognize-anything-plus-model ram_plus_swin_large_14m.pth" in message
    assert "huggingface-cli" not in message  # gone from the installed huggingface_hub
    with pytest.raises(CheckpointNotFoundError, match="hf://owner/repo/file"):
        parse_hf_uri("hf://just-a-repo")
    assert parse_hf_uri("hf://a/b/dir/file.pth") == ("a/b", "dir/file.pth")


def test_hub_cache_is_used_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_files) -> None:
    """A file already in the huggingface_hub cache resolves with the network off."""
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    repo_dir = cache / "models--someone--tiny-ram"
    commit = "0" * 40
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    (snap / "tiny.pth").write_bytes(tiny_files.checkpoint.read_bytes())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True, raising=False)
    resolved = resolve_checkpoint("hf://someone/tiny-ram/tiny.pth", cache_dir=str(cache))
    assert resolved.path.read_bytes() == tiny_files.checkpoint.read_bytes()


def test_converted_safetensors_is_self_contained_and_close(tmp_path: Path, tiny_files, tiny_engine) -> None:
    from ram_model.weights.convert import convert_checkpoint
    from ram_model.weights.model_files import load_model

    out = convert_checkpoint(load_model(tiny_files.engine_config()), tmp_path / "tiny.safetensors")
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        keys = list(f.keys())
        assert all(f.get_tensor(k).dtype == torch.float16 for k in keys if "label_embed" in k or "fc" in k)
    assert not any(k.endswith(("attn_mask", "relative_position_index")) for k in keys)
    # Loads with no config flags at all: configs and vocabulary travel in the metadata.
    converted = TaggingEngine.from_config(type(tiny_files.engine_config())(checkpoint=str(out), device="cpu",
                                                                           precision="fp32"))
    assert converted.vocab.names == tiny_engine.vocab.names
    assert converted.vocab.names_zh == tiny_engine.vocab.names_zh
    assert converted.random_weights
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (torch.sigmoid(converted.model(x)) - torch.sigmoid(tiny_engine.model(x))).abs().max()
    assert diff < 5e-3  # fp16 weights
