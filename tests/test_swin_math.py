"""Swin details the official checkpoints depend on, checked against a direct re-derivation."""
from __future__ import annotations

import torch

from ram_model.model.config import SwinConfig
from ram_model.model.swin import SwinBlock, SwinTransformer, WindowAttention, _shift_attention_mask


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


def _materialised_mask_attention(attn: WindowAttention, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The attention as it was before the masks were cached: bias gathered and, with a shift mask,
    repeated per image into one [B*nW, nH, N, N] tensor on every call."""
    bw, n, c = x.shape
    qkv = attn.qkv(x).view(bw, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    bias = attn.position_bias().to(q.dtype)
    if mask is None:
        full = bias.unsqueeze(0)
    else:
        nw = mask.shape[0]
        full = (bias.unsqueeze(0) + mask.to(q.dtype).unsqueeze(1)).unsqueeze(0).expand(bw // nw, -1, -1, -1, -1)
        full = full.reshape(bw, attn.num_heads, n, n)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=full, scale=attn.scale)
    return attn.proj(out.transpose(1, 2).reshape(bw, n, c))


def _attention_with_table(seed: int = 0) -> WindowAttention:
    torch.manual_seed(seed)
    attn = WindowAttention(dim=16, window=4, num_heads=2).eval()
    torch.nn.init.normal_(attn.relative_position_bias_table, std=0.5)
    return attn


def test_cached_masks_give_the_same_attention_as_masks_rebuilt_per_call() -> None:
    attn = _attention_with_table()
    mask = _shift_attention_mask(resolution=8, window=4, shift=2)
    for batch in (1, 3):
        x = torch.randn(batch * 4, 16, 16)
        with torch.no_grad():
            for m in (mask, None):
                expected = _materialised_mask_attention(attn, x, m)
                for _ in range(2):  # the second call reads the cache
                    torch.testing.assert_close(attn(x, m), expected, atol=1e-6, rtol=0)


def test_masks_are_built_once_and_rebuilt_after_the_table_changes() -> None:
    attn = _attention_with_table()
    mask = _shift_attention_mask(resolution=8, window=4, shift=2)
    with torch.inference_mode():
        first = attn.attention_bias(mask, torch.float32)
        assert attn.attention_bias(mask, torch.float32) is first
        assert first.shape == (4, 2, 16, 16) and first.is_contiguous()
        unshifted = attn.attention_bias(None, torch.float32)
        assert unshifted.shape == (1, 2, 16, 16) and attn.attention_bias(None, torch.float32) is unshifted
        half = attn.attention_bias(mask, torch.bfloat16)
        assert half.dtype == torch.bfloat16 and attn.attention_bias(mask, torch.bfloat16) is half
    with torch.no_grad():  # an optimizer step or load_state_dict: in place
        attn.relative_position_bias_table.add_(1.0)
        after = attn.attention_bias(mask, torch.float32)
    assert after is not first
    torch.testing.assert_close(after, first + 1.0)
    attn.load_state_dict({k: v * 2 for k, v in attn.state_dict().items()})
    with torch.no_grad():
        reloaded = attn.attention_bias(mask, torch.float32)
    expected = (attn.position_bias().unsqueeze(0) + mask.unsqueeze(1)).detach()
    torch.testing.assert_close(reloaded, expected)


def test_training_rebuilds_the_masks_so_the_table_learns() -> None:
    attn = _attention_with_table().train()
    mask = _shift_attention_mask(resolution=8, window=4, shift=2)
    with torch.no_grad():
        cached = attn.attention_bias(mask, torch.float32)  # an evaluation pass during training
    built = attn.attention_bias(mask, torch.float32)
    assert built is not cached and built.requires_grad
    attn(torch.randn(8, 16, 16), mask).square().sum().backward()
    grad = attn.relative_position_bias_table.grad
    assert grad is not None and grad.abs().sum() > 0


def test_a_copied_model_does_not_share_the_cache() -> None:
    import copy

    attn = _attention_with_table()
    with torch.no_grad():
        attn.attention_bias(None, torch.float32)
        twin = copy.deepcopy(attn)
        twin.relative_position_bias_table.zero_()
        assert twin.attention_bias(None, torch.float32).abs().max() == 0
        assert attn.attention_bias(None, torch.float32).abs().max() > 0
