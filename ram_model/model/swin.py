"""Swin Transformer backbone with the official RAM key names.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"
(ICCV 2021). Written for ram-annotate so the engine needs only torch (timm would pull in
torchvision). Parameter names match `visual_encoder.*` in the official RAM / RAM++
checkpoints (the Microsoft layout: a stage's `downsample` closes that stage). The
derived buffers (`relative_position_index`, `attn_mask`) are rebuilt here and are not
persistent, so our state dicts hold learned weights only.

`forward` returns the final-norm token grid with its mean prepended as token 0,
`[B, 1 + H*W, C]`, which is what the tagging head attends to.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SwinConfig
from .derived_cache import DerivedTensorCache

__all__ = ["SwinTransformer", "window_partition", "window_reverse"]

# LayerNorm eps of the official backbone (torch's default).
_LN_EPS = 1e-5
# Additive attention mask between tokens that were not neighbours before the cyclic shift.
_SHIFT_MASK_VALUE = -100.0


def window_partition(x: Tensor, window: int) -> Tensor:
    """[B, H, W, C] -> [B * nW, window*window, C], windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of `window_partition`: [B * nW, window*window, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def _relative_position_index(window: int) -> Tensor:
    """[N, N] index into the (2W-1)^2 bias table for every pair of tokens in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + (window - 1)
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


def _shift_attention_mask(resolution: int, window: int, shift: int) -> Tensor:
    """[nW, N, N] additive mask that keeps shifted windows from mixing distant regions."""
    region = torch.zeros(1, resolution, resolution, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            region[:, hs, ws, :] = label
            label += 1
    windows = window_partition(region, window).squeeze(-1)  # nW, N
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, _SHIFT_MASK_VALUE)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative-position bias."""

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", _relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self._bias_cache = DerivedTensorCache(max_entries=2)

    def position_bias(self) -> Tensor:
        """[nH, N, N] bias gathered from the table (recomputed so finetuned tables take effect)."""
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def attention_bias(self, mask: Tensor | None, dtype: torch.dtype) -> Tensor:
        """The additive attention mask of one image: [1, nH, N, N], or [nW, nH, N, N] with `mask`.

        Position bias plus shift mask, contiguous in `dtype`. Built once and reused while
        gradients are off and the table is unchanged (`ram_model.model.derived_cache`); rebuilt on
        every call while training, so the table's gradient flows.
        """
        table = self.relative_position_bias_table
        sources = (table,) if mask is None else (table, mask)

        def build() -> Tensor:
            bias = self.position_bias().unsqueeze(0)
            if mask is not None:
                bias = bias + mask.unsqueeze(1)
            return bias.to(dtype).contiguous()

        return self._bias_cache.get((table.device, dtype), sources, build)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: [B * nW, N, C]; mask: [nW, N, N] or None."""
        bw, n, c = x.shape
        qkv = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B*nW, nH, N, hd]
        bias = self.attention_bias(mask, q.dtype)  # [nW or 1, nH, N, N]
        nw = bias.shape[0]
        if nw == 1 or nw == bw:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        else:
            out = _broadcast_mask_attention(q, k, v, bias, self.scale)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


def _broadcast_mask_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float) -> Tensor:
    """Shifted-window attention for several images sharing one [nW, nH, N, N] mask.

    Fused attention kernels take 4-D inputs, and the windows of all images sit in one
    batch dimension ([B*nW]), so the old code repeated the mask per image
    ([B*nW, nH, N, N]: 0.25 GB per forward in stage 0 of Swin-L 384 at batch 8, 0.5 GB on
    a GPU at batch 32). Regrouping q, k, v as [B, nW*nH, N, hd] lets one cached
    [1, nW*nH, N, N] mask broadcast over the images in a single call. On a 2-core AVX2 CPU
    at batch 8 (fp32, full RAM++) this, one call per image, and the repeated mask measured
    the same within noise (5.8, 5.7, 5.6 s/image); the single call keeps one kernel launch
    per block on a GPU and no mask copy anywhere.
    """
    nw, nh, n, _ = bias.shape
    images = q.shape[0] // nw
    q, k, v = (t.reshape(images, nw * nh, n, -1) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.view(1, nw * nh, n, n), scale=scale)
    return out.view(images * nw, nh, n, -1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """One (shifted-)window attention block.

    As in the official code, a stage whose resolution is not larger than the window uses
    one window covering the whole grid and no shift.
    """

    def __init__(self, dim: int, resolution: int, num_heads: int, window: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        elif resolution % window:
            raise ValueError(f"stage resolution {resolution} is not divisible by window size {window}")
        self.resolution = resolution
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = _shift_attention_mask(resolution, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, length, c = x.shape
        r = self.resolution
        h = self.norm1(x).view(b, r, r, c)
        if self.shift:
            h = torch.roll(h, shifts=(-self.shift, -self.shift), dims=(1, 2))
        h = self.attn(window_partition(h, self.window), mask=self.attn_mask)
        h = window_reverse(h, self.window, r, r)
        if self.shift:
            h = torch.roll(h, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + h.reshape(b, length, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> LayerNorm -> linear; halves resolution, doubles width."""

    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim, eps=_LN_EPS)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, _, c = x.shape
        r = self.resolution
        x = x.view(b, r, r, c)
        # The official channel order: (even row, even col), (odd, even), (even, odd), (odd, odd).
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, dim: int, resolution: int, depth: int, num_heads: int, window: int,
                 mlp_ratio: float, downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio)
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim, resolution) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=_LN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinTransformer(nn.Module):
    """The visual encoder: images [B, 3, S, S] -> tokens [B, 1 + (S/32)^2, vision_width]."""

    def __init__(self, cfg: SwinConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim)
        grid = cfg.image_res // cfg.patch_size
        last = len(cfg.depths) - 1
        self.layers = nn.ModuleList(
            SwinStage(
                dim=cfg.embed_dim * 2**i,
                resolution=grid // 2**i,
                depth=depth,
                num_heads=cfg.num_heads[i],
                window=cfg.window_size,
                mlp_ratio=cfg.mlp_ratio,
                downsample=i < last,
            )
            for i, depth in enumerate(cfg.depths)
        )
        self.norm = nn.LayerNorm(cfg.vision_width, eps=_LN_EPS)

    def forward(self, images: Tensor) -> Tensor:
        size = self.cfg.image_res
        if images.shape[-2:] != (size, size):
            raise ValueError(f"expected images of {size}x{size}, got {tuple(images.shape[-2:])}")
        x = self.patch_embed(images)
        for stage in self.layers:
            x = stage(x)
        x = self.norm(x)
        return torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
