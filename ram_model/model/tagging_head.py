"""The label-query tagging head: a BERT encoder stack with cross-attention only.

Each class is a query; it attends to the projected image tokens, passes through a
post-LayerNorm feed-forward block, and `fc` (in `ram.py`) turns it into one logit.
Module names reproduce the official `tagging_head.encoder.layer.N.*` keys (the official
code builds a full BERT and deletes its embeddings and self-attention; we never build them).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .config import HeadConfig

__all__ = ["TaggingHead"]


class CrossAttentionProjections(nn.Module):
    """Query from the label stream; key and value from the image tokens."""

    def __init__(self, hidden: int, encoder_width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(encoder_width, hidden)
        self.value = nn.Linear(encoder_width, hidden)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, queries: Tensor, image_tokens: Tensor) -> Tensor:
        """queries [B, K, hidden], image_tokens [B, T, encoder_width] -> [B, K, hidden]."""
        q = self._heads(self.query(queries))
        k = self._heads(self.key(image_tokens))
        v = self._heads(self.value(image_tokens))
        out = F.scaled_dot_product_attention(q, k, v)
        b, _, n, _ = out.shape
        return out.transpose(1, 2).reshape(b, n, -1)


class ResidualNorm(nn.Module):
    """dense -> add the block input -> LayerNorm (BERT's post-norm output block)."""

    def __init__(self, in_features: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class CrossAttention(nn.Module):
    def __init__(self, cfg: HeadConfig, encoder_width: int) -> None:
        super().__init__()
        self.self = CrossAttentionProjections(cfg.hidden_size, encoder_width, cfg.num_attention_heads)
        self.output = ResidualNorm(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps)

    def forward(self, queries: Tensor, image_tokens: Tensor) -> Tensor:
        return self.output(self.self(queries, image_tokens), queries)


class Intermediate(nn.Module):
    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, as BERT's "gelu"


class QueryLayer(nn.Module):
    def __init__(self, cfg: HeadConfig, encoder_width: int) -> None:
        super().__init__()
        self.crossattention = CrossAttention(cfg, encoder_width)
        self.intermediate = Intermediate(cfg)
        self.output = ResidualNorm(cfg.intermediate_size, cfg.hidden_size, cfg.layer_norm_eps)

    def forward(self, queries: Tensor, image_tokens: Tensor) -> Tensor:
        attended = self.crossattention(queries, image_tokens)
        return self.output(self.intermediate(attended), attended)


class QueryEncoder(nn.Module):
    def __init__(self, cfg: HeadConfig, encoder_width: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(QueryLayer(cfg, encoder_width) for _ in range(cfg.num_hidden_layers))


class TaggingHead(nn.Module):
    """Label queries [B, K, hidden] x image tokens [B, T, 512] -> per-class features [B, K, hidden]."""

    def __init__(self, cfg: HeadConfig, encoder_width: int) -> None:
        super().__init__()
        self.encoder = QueryEncoder(cfg, encoder_width)

    def forward(self, queries: Tensor, image_tokens: Tensor) -> Tensor:
        x = queries
        for layer in self.encoder.layer:
            x = layer(x, image_tokens)
        return x
