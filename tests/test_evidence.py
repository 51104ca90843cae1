"""Evidence maps (ram_model.evidence): numerics against a per-tag autograd loop, batching, bad input, bf16."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from finetune_fixtures import one_torch_thread
import torch
from PIL import Image

from ram_model import ConfigError, TaggingEngine
from ram_model.model.config import SwinConfig
from ram_model.evidence import EvidenceRequest, attention_head_forward, box_from_map, evidence_for, token_grid
from ram_model.model.preprocess import to_model_input
from ram_model.weights.testing import TINY_HEAD, TINY_SWIN, make_tiny_checkpoint

@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Two spinning OpenMP threads on a shared 2-core machine make tiny models many times slower."""
    with one_torch_thread():
        yield


# 128 px: a 4 x 4 token grid, so maps and boxes have room to differ (the stock tiny model has 2 x 2).
GRID4_SWIN = SwinConfig(image_res=128, window_size=4, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(2, 2, 4, 4),
                        vision_width=128)


@pytest.fixture(scope="module", params=["ram", "ram_plus"])
def engine(request, tmp_path_factory) -> TaggingEngine:
    files = make_tiny_checkpoint(tmp_path_factory.mktemp(f"ev_{request.param}"), variant=request.param, seed=3,
                                 swin=GRID4_SWIN)
    return TaggingEngine.from_config(files.engine_config(precision="fp32", batch_size=3))


def _pictures(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        arr = rng.integers(60, 200, size=(90 + 7 * i, 120, 3), dtype=np.uint8)
        y, x = rng.integers(0, 50), rng.integers(0, 70)
        arr[y:y + 40, x:x + 50] = rng.integers(0, 256, size=3, dtype=np.uint8)
        out.append(Image.fromarray(arr))
    return out


def _reference_map(model, image: torch.Tensor, cls: int, grid: int) -> tuple[np.ndarray, float]:
    """One image, one tag, its own autograd pass: attention written out here, not in ram_model.evidence."""
    tokens = model.image_proj(model.visual_encoder(image[None])).detach()
    x = model.label_queries(tokens, torch.tensor([cls])).detach().requires_grad_(True)
    attentions = []
    for layer in model.tagging_head.encoder.layer:
        p = layer.crossattention.self
        heads = p.num_heads

        def split(t):
            return t.view(1, t.shape[1], heads, -1).transpose(1, 2)

        q, k, v = split(p.query(x)), split(p.key(tokens)), split(p.value(tokens))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        attentions.append(a)
        out = (a @ v).transpose(1, 2).reshape(1, 1, -1)
        att = layer.crossattention.output(out, x)
        x = layer.output(layer.intermediate(att), att)
    logit = model.fc(x).squeeze()
    grads = torch.autograd.grad(logit, attentions)
    cam = sum((a * g.clamp_min(0)).mean(dim=1)[0, 0, 1:] for a, g in zip(attentions, grads))
    cam = cam / cam.max() if cam.max() > 0 else cam
    return cam.detach().view(grid, grid).numpy(), float(logit.detach())


def test_explicit_attention_head_matches_the_models_fused_head(engine) -> None:
    model = engine.model
    x = torch.stack([to_model_input(p, engine.image_size) for p in _pictures(3)])
    with torch.no_grad():
        tokens = model.image_proj(model.visual_encoder(x))
        queries = model.label_queries(tokens)
        logits, attentions = attention_head_forward(model, queries, tokens)
        np.testing.assert_allclose(logits.numpy(), model(x).numpy(), atol=1e-5)
    assert len(attentions) == 2 and attentions[0].shape == (3, 4, len(engine.vocab), 1 + 16)


def test_batched_maps_equal_a_per_tag_autograd_loop(engine) -> None:
    """One backward over all (image, tag) pairs == one backward per pair, RAM and RAM++ alike:
    the tags do not interact through the attention (RAM++'s reweighting reads only the pooled token)."""
    pictures = _pictures(5)
    choices = [[0, 5, 7], [3], [], [10, 0, 47, 2], [1, 2]]  # ragged: rows are padded inside a batch
    it = iter(choices)
    preds = engine.predict(pictures, evidence=EvidenceRequest(select=lambda probs: next(it)))
    grid = token_grid(engine._loaded.swin)
    worst = 0.0
    for pred, picture, wanted in zip(preds, pictures, choices):
        assert [e.index for e in pred.evidence] == wanted
        image = to_model_input(picture, engine.image_size)
        for ev in pred.evidence:
            ref, logit = _reference_map(engine.model, image, ev.index, grid)
            worst = max(worst, float(np.abs(ev.map - ref).max()))
            assert ev.score == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-6)
            assert ev.map.shape == (grid, grid) and ev.map.min() >= 0 and ev.map.max() == pytest.approx(1.0)
            assert ev.box == box_from_map(ev.map)
    print(f"largest difference from the per-tag loop: {worst:.2e}")
    assert worst < 1e-5, worst


def test_evidence_leaves_the_probabilities_unchanged_and_batching_changes_nothing(engine) -> None:
    pictures = _pictures(7, seed=1)
    plain = engine.predict(pictures)
    batched = evidence_for(engine, pictures, tags=["dog", "sky", "car"])
    single = engine.restricted(None)
    single.batch_size = 1
    one_by_one = evidence_for(single, pictures, tags=["dog", "sky", "car"])
    for a, b, c in zip(plain, batched, one_by_one):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
        assert [e.name for e in b.evidence] == ["dog", "sky", "car"]
        for eb, ec in zip(b.evidence, c.evidence):
            np.testing.assert_allclose(eb.map, ec.map, atol=1e-5)


def test_a_restricted_engine_maps_its_tags_as_the_full_one(engine) -> None:
    pictures = _pictures(3, seed=2)
    full = evidence_for(engine, pictures, tags=["cat", "tree"])
    view = evidence_for(engine.restricted(["tree", "cat", "bus"]), pictures, tags=["cat", "tree"])
    for a, b in zip(full, view):
        assert [e.name for e in b.evidence] == ["cat", "tree"]
        for ea, eb in zip(a.evidence, b.evidence):
            np.testing.assert_allclose(ea.map, eb.map, atol=1e-5)
            assert ea.score == pytest.approx(eb.score, abs=1e-6)


def test_default_request_maps_exactly_the_fired_tags(engine) -> None:
    preds = evidence_for(engine, _pictures(4, seed=3))
    for p in preds:
        fired = np.flatnonzero(p.probs > engine.vocab.thresholds)
        assert sorted(e.index for e in p.evidence) == sorted(fired.tolist())
        scores = [e.score for e in p.evidence]
        assert scores == sorted(scores, reverse=True)


def test_bad_input_no_tag_empty_list_huge_image_unknown_tag(engine, tmp_path: Path) -> None:
    nothing = engine.predict(_pictures(2), evidence=EvidenceRequest(select=lambda probs: []))
    assert [p.evidence for p in nothing] == [[], []]
    assert evidence_for(engine, []) == []
    huge = tmp_path / "huge.png"
    Image.new("RGB", (6000, 6000)).save(huge)
    small = engine.restricted(None)
    small.config = dataclasses.replace(small.config, max_image_pixels=1_000_000)
    preds = evidence_for(small, [huge, _pictures(1)[0]], tags=["dog"])
    assert preds[0].error and "pixels" in preds[0].error and preds[0].evidence is None
    assert preds[1].ok and [e.name for e in preds[1].evidence] == ["dog"]
    with pytest.raises(ConfigError, match="did you mean"):
        evidence_for(engine, _pictures(1), tags=["dgo"])
    with pytest.raises(ValueError, match="not one string"):
        EvidenceRequest(tags="dog")


def test_bf16_maps_stay_close_to_fp32(tmp_path: Path) -> None:
    files = make_tiny_checkpoint(tmp_path, variant="ram_plus", seed=3, swin=GRID4_SWIN)
    fp32 = TaggingEngine.from_config(files.engine_config(precision="fp32"))
    bf16 = TaggingEngine.from_config(files.engine_config(precision="bf16"))
    pictures = _pictures(4, seed=4)
    tags = ["dog", "cat", "sky", "car", "tree"]
    a, b = evidence_for(fp32, pictures, tags=tags), evidence_for(bf16, pictures, tags=tags)
    diffs = [float(np.abs(ea.map - eb.map).max()) for pa, pb in zip(a, b) for ea, eb in zip(pa.evidence, pb.evidence)]
    print(f"bf16 vs fp32 map differences: median {np.median(diffs):.3f}, max {max(diffs):.3f}")
    assert all(np.isfinite(diffs))
    # bf16 keeps 8 mantissa bits: maps move by a few hundredths, rarely more.
    assert float(np.median(diffs)) < 0.05 and max(diffs) < 0.25, diffs
    for pb in b:
        for e in pb.evidence:
            assert e.map.dtype == np.float32 and 0 <= e.map.min() and e.map.max() <= 1.0 + 1e-6


@pytest.mark.parametrize("heat, box", [
    (np.zeros((3, 3)), None),
    (np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], float), [1 / 3, 1 / 3, 2 / 3, 2 / 3]),
    # the region holding the peak, not the other bright cell across a gap
    (np.array([[1, .6, 0, .9], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], float), [0, 0, .5, .25]),
    # 4-connectivity: a diagonal neighbour is not part of the region
    (np.array([[1, 0], [0, .8]], float), [0, 0, .5, .5]),
    (np.array([[.2, .3], [.5, 1]], float), [0, .5, 1, 1]),
])
def test_box_rule(heat: np.ndarray, box) -> None:
    got = box_from_map(heat)
    assert got == (None if box is None else pytest.approx(box))


def test_token_grid_from_the_config() -> None:
    assert token_grid(TINY_SWIN) == 2 and token_grid(GRID4_SWIN) == 4
    assert token_grid(SwinConfig(image_res=384, window_size=12, embed_dim=192, depths=(2, 2, 18, 2),
                                 num_heads=(6, 12, 24, 48), vision_width=1536)) == 12
    assert TINY_HEAD.num_hidden_layers == 2
