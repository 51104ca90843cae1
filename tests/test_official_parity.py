"""Numerical parity with the official recognize-anything code (RAM and RAM++), on tiny random checkpoints.

Skipped unless RAM_OFFICIAL_CODE names a checkout of github.com/xinyu1205/recognize-anything
and this interpreter has `transformers` (4.36-4.46 tested) and `scipy`. Nothing official is
copied into this repository: the official modules are imported from that checkout at run time,
without `ram/__init__.py` (torchvision); `timm` (three helpers) and `ram.models.vit` are stubbed
in memory, the BERT tokenizer (network) is replaced by a stub of the right length, and the
official CONFIG_PATH points at a temp dir holding our tiny configs. Example:

    python3 -m venv /tmp/offvenv
    /tmp/offvenv/bin/pip install -c .ci/constraints.txt torch numpy pillow safetensors pytest scipy "transformers<4.47"
    RAM_OFFICIAL_CODE=/path/to/recognize-anything /tmp/offvenv/bin/python -m pytest tests/test_official_parity.py
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ram_model import TaggingEngine
from ram_model.config import HeadConfig, SwinConfig
from ram_model.testing import make_tiny_checkpoint

OFFICIAL = Path(os.environ.get("RAM_OFFICIAL_CODE", "/nonexistent"))
if not (OFFICIAL / "ram" / "models" / "ram_plus.py").is_file():
    pytest.skip("set RAM_OFFICIAL_CODE to a recognize-anything checkout", allow_module_level=True)
pytest.importorskip("transformers")
pytest.importorskip("scipy")

MID_SWIN = SwinConfig(image_res=128, window_size=8, embed_dim=32, depths=(2, 2, 4, 2),
                      num_heads=(2, 4, 8, 8), vision_width=256)
MID_HEAD = HeadConfig(hidden_size=512, intermediate_size=1024, num_attention_heads=8, num_hidden_layers=2)
# Sized like the training-only tag_encoder/text_decoder sample entries make_tiny_checkpoint writes for RAM.
TINY_MED = {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2,
            "vocab_size": 32, "max_position_embeddings": 16, "add_cross_attention": True, "encoder_width": 512}


class _DropPath(nn.Module):  # only the eval behaviour matters here
    def __init__(self, p: float = 0.0) -> None:
        super().__init__()

    def forward(self, x):
        return x


class _Tokenizer:
    def __len__(self) -> int:  # bert-base-uncased + [DEC] + [ENC]
        return 30524

    def __call__(self, text):  # RAM measures its prompt once
        return types.SimpleNamespace(input_ids=[101] + [1] * len(text.split()) + [102])


class _Res(int):
    """The image size, also equal to 384 so the official code reads config_swinL_384.json (ours, below)."""

    def __eq__(self, other):
        return other == 384 or int(self) == other

    __hash__ = int.__hash__


@pytest.fixture(scope="module")
def official():
    import transformers  # noqa: F401  (it probes for timm at import: import it before the stub)

    ours = lambda name: name.split(".")[0] in ("timm", "ram")  # noqa: E731
    saved = {k: v for k, v in sys.modules.items() if ours(k)}
    stubs = {
        "timm": {"__path__": []}, "timm.models": {"__path__": []}, "timm.models.hub": {"download_cached_file": None},
        "timm.models.layers": {"DropPath": _DropPath, "trunc_normal_": nn.init.trunc_normal_,
                               "to_2tuple": lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)},
        "ram": {"__path__": [str(OFFICIAL / "ram")]}, "ram.models": {"__path__": [str(OFFICIAL / "ram" / "models")]},
        "ram.models.vit": {"interpolate_pos_embed": None, "VisionTransformer": None},
    }
    for name, attrs in stubs.items():
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].__dict__.update(attrs)
    try:
        yield tuple(importlib.import_module(f"ram.models.{m}") for m in ("utils", "ram_plus", "ram"))
    finally:
        for name in [k for k in sys.modules if ours(k)]:
            del sys.modules[name]
        sys.modules.update(saved)


def _build_official(mods, files, tmp: Path, monkeypatch):
    utils, ram_plus, ram = mods
    (tmp / "configs" / "swin").mkdir(parents=True)
    (tmp / "data").mkdir()
    swin = json.loads(files.swin_config.read_text())
    (tmp / "configs" / "swin" / "config_swinL_384.json").write_text(json.dumps(swin))
    q2l = json.loads((OFFICIAL / "ram" / "configs" / "q2l_config.json").read_text())
    q2l.update(json.loads(files.head_config.read_text()))  # ours lacks add_cross_attention: keep the official keys
    (tmp / "configs" / "q2l_config.json").write_text(json.dumps(q2l))
    (tmp / "data" / "ram_tag_list_threshold.txt").write_text(files.thresholds.read_text())
    (tmp / "med.json").write_text(json.dumps({**q2l, **TINY_MED}))
    for m in mods:
        monkeypatch.setattr(m, "CONFIG_PATH", tmp)
        monkeypatch.setattr(m, "init_tokenizer", lambda *a, **k: _Tokenizer())
    # The official loader resizes every relative_position_bias_table to (2*window-1)^2, which breaks
    # stages smaller than the window (built with a clamped window): keep tables as they are.
    monkeypatch.setattr(utils, "interpolate_relative_pos_embed", lambda t, n, param_name="": t)
    kwargs = dict(image_size=_Res(swin["image_res"]), vit="swin_l",
                  tag_list=str(files.tag_list), tag_list_chinese=str(files.tag_list_zh))
    if files.variant == "ram":
        model = ram.RAM(med_config=str(tmp / "med.json"), **kwargs)
    else:
        model = ram_plus.RAM_plus(**kwargs)
    model, msg = utils.load_checkpoint_swinlarge(model, str(files.checkpoint), kwargs)
    return model.eval(), msg


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
