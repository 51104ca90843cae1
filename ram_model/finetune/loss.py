"""The official RAM tagging loss: the asymmetric loss (Ridnik et al., ICCV 2021) with gamma_neg=7, gamma_pos=0, clip 0.05.

Same form as recognize-anything's `AsymmetricLoss` (`ram/models/utils.py`): the negative
probability is shifted by `clip` (easy negatives drop out entirely), log-likelihoods are
clamped at `eps`, and the focusing weights are computed without gradient. Two
differences, both for a tagging-only objective: a `known` mask removes the cells the
negatives policy calls unknown, and the sum is divided by the batch size (the official
trainer rescales its summed tag loss against the caption loss, which we do not train).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["asymmetric_loss"]


def asymmetric_loss(logits: Tensor, targets: Tensor, known: Tensor | None = None, *,
                    gamma_neg: float = 7.0, gamma_pos: float = 0.0, clip: float = 0.05,
                    eps: float = 1e-8) -> Tensor:
    """logits, targets {0,1}, known {0,1}: [B, K] -> scalar (summed over classes, mean over images)."""
    prob = torch.sigmoid(logits.float())
    targets = targets.float()
    prob_neg = (1 - prob + clip).clamp(max=1) if clip > 0 else 1 - prob
    loss = targets * torch.log(prob.clamp(min=eps)) + (1 - targets) * torch.log(prob_neg.clamp(min=eps))
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.no_grad():
            p_true = prob * targets + prob_neg * (1 - targets)
            gamma = gamma_pos * targets + gamma_neg * (1 - targets)
            weight = torch.pow(1 - p_true, gamma)
        loss = loss * weight
    if known is not None:
        loss = loss * known.float()
    return -loss.sum() / max(logits.shape[0], 1)
