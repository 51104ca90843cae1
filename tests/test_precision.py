"""Precision: what `auto` picks, weights cast once at load, fp32 untouched; `--compile`."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ram_model import TaggingEngine
from ram_model.inference import precision as precision_module
from ram_model.model.config import HeadConfig, SwinConfig
from ram_model.weights.model_files import load_model
from ram_model.inference.options import ModelOptions
from ram_model.inference.precision import autocast_context, cast_for_inference, inference_dtype
from ram_model.model.ram import RAMTagger
from ram_model.weights.testing import random_init_

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


def test_auto_is_fp32_on_a_cpu_without_amx_and_bf16_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_amx", lambda: False)
    assert inference_dtype("auto", CPU) is None
    assert inference_dtype("auto", MPS) is None
    assert inference_dtype("auto", CUDA) is torch.float16
    monkeypatch.setattr(precision_module, "cpu_has_amx", lambda: True)
    assert inference_dtype("auto", CPU) is torch.bfloat16
    assert inference_dtype("fp32", CPU) is None  # fp32 is one flag away, AMX or not
    assert inference_dtype("bf16", CUDA) is torch.bfloat16 and inference_dtype("fp16", CPU) is torch.float16


def test_engine_on_an_amx_cpu_runs_bf16_with_linear_weights_cast_and_norms_fp32(
        tiny_files, image_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_amx", lambda: True)
    engine = TaggingEngine.from_config(tiny_files.engine_config(precision="auto"))
    assert engine.info()["precision"] == "bfloat16"
    model = engine.model
    blocks = model.visual_encoder.layers[0].blocks[0]
    assert blocks.attn.qkv.weight.dtype == torch.bfloat16 and blocks.attn.qkv.bias.dtype == torch.bfloat16
    assert model.visual_encoder.patch_embed.proj.weight.dtype == torch.bfloat16
    assert model.label_embed.dtype == torch.bfloat16 and model.fc.weight.dtype == torch.bfloat16
    assert blocks.norm1.weight.dtype == torch.float32 and model.visual_encoder.norm.bias.dtype == torch.float32
    assert blocks.attn.relative_position_bias_table.dtype == torch.float32
    assert model.reweight_scale.dtype == torch.float32
    tags = engine.tag_embeddings()
    assert tags.dtype == np.float32 and tags.shape == (48, 512)
    probs = engine.predict_proba(sorted(image_dir.glob("*.png")))
    fp32 = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32"))
    np.testing.assert_allclose(probs, fp32.predict_proba(sorted(image_dir.glob("*.png"))), atol=0.05)
    np.testing.assert_allclose(tags, fp32.tag_embeddings(), atol=2e-2)


def test_fp32_leaves_every_weight_alone_and_gives_the_plain_model_bitwise(tiny_files) -> None:
    engine = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32"))
    plain = load_model(tiny_files.engine_config()).model.eval()
    assert all(p.dtype == torch.float32 for p in engine.model.parameters())
    x = torch.randn(3, 3, engine.image_size, engine.image_size, generator=torch.Generator().manual_seed(0))
    probs, pooled = engine._forward(x)
    with torch.no_grad():
        logits, embedding = plain.forward_with_embedding(x)
    assert torch.equal(probs, torch.sigmoid(logits)) and torch.equal(pooled, embedding)


@pytest.mark.parametrize("files", ["tiny_files", "tiny_files_ram"])
def test_casting_once_gives_what_autocast_alone_gives(files: str, request: pytest.FixtureRequest) -> None:
    """bf16 weights cast at load + autocast == fp32 weights cast by autocast on every forward."""
    config = request.getfixturevalue(files).engine_config()
    per_forward, once = load_model(config).model.eval(), load_model(config).model.eval()
    assert cast_for_inference(once, torch.bfloat16, CPU) > 0
    assert cast_for_inference(per_forward, None, CPU) == 0
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([5, 0, 47])
    with torch.inference_mode(), autocast_context(CPU, torch.bfloat16):
        for chosen in (None, classes):
            a_logits, a_pooled = per_forward.forward_with_embedding(x, chosen)
            b_logits, b_pooled = once.forward_with_embedding(x, chosen)
            # Identical: autocast rounds each fp32 weight to bf16 exactly as the cast at load
            # did, then runs the same kernels (bf16 vs fp32 differs by ~1e-2 here).
            assert torch.equal(b_logits, a_logits) and torch.equal(b_pooled, a_pooled)


def test_mps_keeps_fp32_weights_and_fp32_casts_nothing() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    assert cast_for_inference(model, torch.float16, MPS) == 0
    assert cast_for_inference(model, None, CPU) == 0
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert cast_for_inference(model, torch.float16, CPU) == 2
    assert model[0].weight.dtype == torch.float16 and model[1].weight.dtype == torch.float32


def test_compile_is_an_option_everywhere_and_off_by_default() -> None:
    assert ModelOptions().engine_config().compile is False
    assert ModelOptions.from_values({"compile": "true"}).engine_config().compile is True
    assert ModelOptions.from_values({}, env={"RAM_ANNOTATE_COMPILE": "1"}).compile is True


def test_a_model_that_cannot_compile_runs_eager_with_one_warning(tiny_files, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    engine = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32", compile=True))
    eager = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32"))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = engine._forward(x)
        second = engine._forward(x)
    assert [str(w.message) for w in caught] == [
        "torch.compile is not available here, running eager: RuntimeError: InvalidCxxCompiler: no working C++ "
        "compiler found"]
    assert engine.info()["compiled"] is False
    for got in (first, second):
        assert torch.equal(got[0], eager._forward(x)[0])
    with pytest.raises(ValueError, match="expected images of 64x64"):  # a bad input is still an error
        engine._forward(torch.zeros(1, 3, 32, 32))


@pytest.mark.slow
def test_compiled_forward_equals_eager() -> None:
    """A two-stage Swin (one shifted block per stage) keeps inductor's compile time short."""
    from ram_model.inference.compiled import CompiledForward

    swin = SwinConfig(image_res=32, window_size=4, embed_dim=16, depths=(2, 2), num_heads=(2, 2), vision_width=32)
    head = HeadConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1,
                      layer_norm_eps=1e-12)
    model = random_init_(RAMTagger(swin, head, 8, "ram_plus"), 0).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    classes = torch.tensor([6, 1])
    with torch.inference_mode():
        expected = model.forward_with_embedding(x, classes)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compiled = CompiledForward(model)
            got = compiled(x, classes)
        if not compiled.active:
            pytest.skip(f"torch.compile does not work here: {compiled.failed} ({[str(w.message) for w in caught]})")
    torch.testing.assert_close(got[0], expected[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(got[1], expected[1], atol=1e-4, rtol=0)
    assert not torch._inductor.config.freezing  # freezing was set for our compile only


def test_engines_cast_alike_still_share_one_backbone(tiny_files) -> None:
    """The Label Studio backend shares the image encoder between a base and a head-only fine-tune."""
    from backend.serving.projects import share_backbone

    base = TaggingEngine.from_config(tiny_files.engine_config(precision="bf16"))
    tuned = TaggingEngine.from_config(tiny_files.engine_config(precision="bf16"))
    fp32 = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32"))
    assert not share_backbone(fp32, base)  # different dtypes: not the same weights
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    before = tuned._forward(x)
    assert share_backbone(tuned, base) and tuned.model.visual_encoder is base.model.visual_encoder
    assert torch.equal(tuned._forward(x)[0], before[0])
