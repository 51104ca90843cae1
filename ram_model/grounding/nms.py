"""Non-maximum suppression in plain torch (torchvision's compiled `nms` does not load beside CPU torch here).

The Grounded-SAM recipe suppresses class-agnostically at IoU 0.5: two phrases that found
the same object keep only the better-scored box.
"""
from __future__ import annotations

import torch

__all__ = ["box_iou", "nms"]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4) x (M, 4) [x0, y0, x1, y1] boxes -> (N, M) intersection over union (0 where both are empty)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes kept, best score first; a box goes when its IoU with a kept,
    better-scored box is strictly above `iou_threshold` (torchvision's rule).

    One IoU matrix for all boxes, then a greedy pass over it: the detector yields at most
    a few hundred boxes per image, so the N x N matrix is small and the loop is over rows
    of booleans, not over box arithmetic.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    over = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu()
    removed = torch.zeros(len(order), dtype=torch.bool)
    keep: list[int] = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= over[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]
