"""Per-tag evidence maps from the tagging head's cross-attention, one backward per batch.

Why one backward is enough: the head has no self-attention, so the attention row of tag k
in image b (every layer, every head) feeds only that tag's logit. The gradient of the sum of
the selected logits w.r.t. the attention probabilities therefore holds, row by row, each
tag's own gradient, the same as one backward per tag. The image tokens enter as constants
(no gradient through the Swin), so this holds for RAM++ too: its per-image description
reweighting reads the pooled image token, which does not depend on the head's attention
(tests/test_evidence.py checks both against a per-tag autograd loop).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..model.config import SwinConfig
from ..model.ram import RAMTagger

__all__ = ["attention_head_forward", "evidence_maps", "token_grid", "tag_queries"]


def token_grid(swin: SwinConfig) -> int:
    """Side of the image-token grid: 12 for Swin at 384 px (patch 4, 3 merges), 2 for the tiny model."""
    return swin.image_res // swin.patch_size // 2 ** (len(swin.depths) - 1)


def attention_head_forward(model: RAMTagger, queries: Tensor, tokens: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The tagging head with its attention probabilities kept: (logits [B, K], [A_layer [B, H, K, T]]).

    The same arithmetic as `TaggingHead.forward` (which uses the fused attention kernel and
    keeps nothing), written out so the probabilities are tensors autograd can differentiate.
    """
    attentions = []
    x = queries
    for layer in model.tagging_head.encoder.layer:
        proj = layer.crossattention.self
        q, k, v = proj._heads(proj.query(x)), proj._heads(proj.key(tokens)), proj._heads(proj.value(tokens))
        probs = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]), dim=-1)
        attentions.append(probs)
        out = (probs.to(v.dtype) @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        attended = layer.crossattention.output(out, x)
        x = layer.output(layer.intermediate(attended), attended)
    return model.fc(x).squeeze(-1), attentions


def tag_queries(model: RAMTagger, tokens: Tensor, classes: Tensor) -> Tensor:
    """[B, M, hidden] queries of `classes` [B, M] (a class list per image), without gradients.

    The queries of the classes used anywhere in the batch are computed once (RAM++: reweighted
    per image) and gathered per image.
    """
    union, inverse = torch.unique(classes, return_inverse=True)
    with torch.no_grad():
        per_union = model.label_queries(tokens, union)  # B, U, hidden
    return torch.gather(per_union, 1, inverse.unsqueeze(-1).expand(-1, -1, per_union.shape[-1]))


def evidence_maps(model: RAMTagger, tokens: Tensor, classes: Tensor, valid: Tensor, grid: int,
                  ) -> tuple[Tensor, Tensor]:
    """(maps [B, M, grid, grid] in 0..1, logits [B, M]) for class lists `classes` [B, M] (int64).

    `valid` [B, M] bool marks the real entries (rows are padded to the longest list); padded
    entries get zero maps. `tokens` [B, 1 + grid^2, 512] are the projected image tokens.
    Per layer, the heads' mean of attention x relu(d logit / d attention); layers summed;
    the pooled token dropped; each map divided by its maximum.
    """
    tokens = tokens.detach()
    queries = tag_queries(model, tokens, classes).detach().requires_grad_(True)
    with torch.enable_grad():
        logits, attentions = attention_head_forward(model, queries, tokens)
        objective = (logits.float() * valid.to(torch.float32)).sum()
        grads = torch.autograd.grad(objective, attentions)
    heat = sum((a.detach().float() * g.float().clamp_min(0)).mean(dim=1) for a, g in zip(attentions, grads))
    heat = heat[..., 1:]  # B, M, grid^2: the pooled token is not a place
    if heat.shape[-1] != grid * grid:
        raise ValueError(f"{heat.shape[-1]} image tokens do not make a {grid}x{grid} grid")
    peak = heat.amax(dim=-1, keepdim=True)
    heat = torch.where(peak > 0, heat / peak.clamp_min(torch.finfo(torch.float32).tiny), torch.zeros_like(heat))
    heat = heat * valid.unsqueeze(-1)
    return heat.view(*heat.shape[:2], grid, grid), logits.detach().float()
