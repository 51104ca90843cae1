"""Swin details the official checkpoints depend on, checked against a direct re-derivation."""
from __future__ import annotations

import torch

from ram_model.config import SwinConfig
from ram_model.swin import SwinBlock, SwinTransformer, WindowAttention, _shift_attention_mask


def test_window_attention_equals_the_plain_formula() -> None:
    torch.manual_seed(0)
    attn = WindowAttention(dim=16, window=4, num_heads=2)
    torch.nn.init.normal_(attn.relative_position_bias_table, std=0.5)
    x = torch.randn(2 * 4, 16, 16)  # B=2, nW=4 windows of 16 tokens
    mask = _shift_attention_mask(resolution=8, window=4, shift=2)
    qkv = attn.qkv(x).view(8, 16, 3, 2, 8).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * 8**-0.5, qkv[1], qkv[2]
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(16, 16, 2).permute(2, 0, 1)
    scores = (q @ k.transpose(-2, -1) + bias).view(2, 4, 2, 16, 16) + mask.unsqueeze(1)
    ref = (scores.view(8, 2, 16, 16).softmax(-1) @ v).transpose(1, 2).reshape(8, 16, 16)
    torch.testing.assert_close(attn(x, mask), attn.proj(ref), atol=1e-5, rtol=1e-5)
    unmasked = ((q @ k.transpose(-2, -1) + bias).softmax(-1) @ v).transpose(1, 2).reshape(8, 16, 16)
    torch.testing.assert_close(attn(x), attn.proj(unmasked), atol=1e-5, rtol=1e-5)


def test_shift_mask_separates_regions_with_minus_100() -> None:
    mask = _shift_attention_mask(resolution=8, window=4, shift=2)
    assert mask.shape == (4, 16, 16)
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    assert (mask[0] == 0).all()  # the top-left window holds one region only
    assert (mask[3] != 0).any()


def test_stage_at_window_resolution_runs_unshifted_and_smaller_stages_shrink_the_window() -> None:
    at = SwinBlock(dim=8, resolution=4, num_heads=2, window=4, shift=2, mlp_ratio=4.0)
    assert at.shift == 0 and at.attn_mask is None
    below = SwinBlock(dim=8, resolution=2, num_heads=2, window=4, shift=2, mlp_ratio=4.0)
    assert below.window == 2 and below.attn.relative_position_bias_table.shape == (9, 2)
    shifted = SwinBlock(dim=8, resolution=8, num_heads=2, window=4, shift=2, mlp_ratio=4.0)
    assert shifted.shift == 2 and shifted.attn_mask.shape == (4, 16, 16)


def test_output_is_mean_token_then_grid() -> None:
    cfg = SwinConfig(image_res=64, window_size=4, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(2, 2, 4, 4),
                     vision_width=128)
    model = SwinTransformer(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1 + 2 * 2, 128)
    torch.testing.assert_close(out[:, 0], out[:, 1:].mean(dim=1))
