"""Numerical parity with the official recognize-anything code (RAM and RAM++), on tiny random checkpoints.

Skipped unless RAM_OFFICIAL_CODE names a checkout of github.com/xinyu1205/recognize-anything
and this interpreter has `transformers` (4.36-4.46 and 5.17 tested) and `scipy`. Nothing official is
copied into this repository: `official_code.py` imports the official modules from that checkout
at run time (stubs and transformers-5 shims: its docstring) and builds them from our tiny configs.
Example:

    python3 -m venv /tmp/offvenv
    /tmp/offvenv/bin/pip install -c .ci/constraints.txt torch numpy pillow safetensors pytest scipy "transformers<4.47"
    RAM_OFFICIAL_CODE=/path/to/recognize-anything /tmp/offvenv/bin/python -m pytest tests/test_official_parity.py
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from official_code import build_official_model, is_official_checkout, official_modules

from ram_model import TaggingEngine
from ram_model.model.config import HeadConfig, SwinConfig
from ram_model.weights.testing import make_tiny_checkpoint

OFFICIAL = Path(os.environ.get("RAM_OFFICIAL_CODE", "/nonexistent"))
if not is_official_checkout(OFFICIAL):
    pytest.skip("set RAM_OFFICIAL_CODE to a recognize-anything checkout", allow_module_level=True)
pytest.importorskip("transformers")
pytest.importorskip("scipy")

MID_SWIN = SwinConfig(image_res=128, window_size=8, embed_dim=32, depths=(2, 2, 4, 2),
                      num_heads=(2, 4, 8, 8), vision_width=256)
MID_HEAD = HeadConfig(hidden_size=512, intermediate_size=1024, num_attention_heads=8, num_hidden_layers=2)


@pytest.fixture(scope="module")
def official():
    with official_modules(OFFICIAL) as mods:
        yield mods


def _build_official(mods, files, tmp: Path, monkeypatch):
    return build_official_model(mods, files, tmp, OFFICIAL, patch=monkeypatch.setattr)


@pytest.mark.parametrize("variant", ["ram_plus", "ram"])
@pytest.mark.parametrize("size", ["tiny", "tiny-legacy-prefix", pytest.param("mid", marks=pytest.mark.slow)])
def test_logits_and_tags_match_official(official, variant, size, tmp_path, monkeypatch):
    extra = {"mid": dict(swin=MID_SWIN, head=MID_HEAD), "tiny-legacy-prefix": dict(legacy_prefix=True)}.get(size, {})
    files = make_tiny_checkpoint(tmp_path / "ckpt", variant=variant, seed=0, **extra)
    model, msg = _build_official(official, files, tmp_path / "official", monkeypatch)
    assert msg.unexpected_keys == []
    assert all(k.rsplit(".", 1)[-1] in ("relative_position_index", "attn_mask")
               or k.startswith(("tag_encoder.", "text_decoder.")) for k in msg.missing_keys), msg.missing_keys

    eng = TaggingEngine.from_config(files.engine_config())
    x = torch.randn(3, 3, eng.image_size, eng.image_size, generator=torch.Generator().manual_seed(0))
    captured = {}
    model.fc.register_forward_hook(lambda m, i, o: captured.setdefault("logits", o.squeeze(-1)))
    with torch.no_grad():
        official_en, official_zh = model.generate_tag(x)
        ours = eng.model(x)
    assert (captured["logits"] - ours).abs().max().item() <= 1e-4

    thresholds = torch.from_numpy(eng.vocab.thresholds).float()
    assert torch.equal(model.class_threshold, thresholds)
    _assert_same_tags(official_en, official_zh, torch.sigmoid(ours) > thresholds, eng.vocab)

    # Random weights may fire nothing at the real thresholds: repeat with one threshold in the widest
    # gap between the middle probabilities, so about half the tags fire and rounding cannot flip one.
    probs = torch.sigmoid(captured.pop("logits")).flatten().sort().values
    mid = probs[len(probs) // 4: 3 * len(probs) // 4 + 1]
    gap = int((mid[1:] - mid[:-1]).argmax())
    model.class_threshold = torch.full_like(thresholds, float(mid[gap] + mid[gap + 1]) / 2)
    with torch.no_grad():
        official_en, official_zh = model.generate_tag(x)
    _assert_same_tags(official_en, official_zh, torch.sigmoid(ours) > model.class_threshold, eng.vocab)


def _assert_same_tags(official_en, official_zh, fired, vocab):
    rows = [np.flatnonzero(r) for r in fired.numpy()]
    assert official_en == [" | ".join(vocab.names[i] for i in r) for r in rows]
    # The official Chinese list has stray trailing spaces that the official code keeps and ours strips.
    assert [" | ".join(t.strip() for t in s.split(" | ")) if s else s for s in official_zh] == [
        " | ".join(vocab.names_zh[i] for i in r) for r in rows]
