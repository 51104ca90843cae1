"""Image -> normalised tensor, exactly as the official transform does it, without torchvision.

The official pipeline is `convert('RGB') -> Resize((S, S))` (PIL bilinear; PIL's resize
always antialiases, which is what torchvision does for PIL input) `-> ToTensor -> Normalize`.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .config import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["to_model_input"]

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def to_model_input(img: Image.Image, size: int) -> torch.Tensor:
    """RGB PIL image -> float32 [3, size, size]."""
    resized = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(resized, dtype=np.uint8)
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255)
    return (t - _MEAN) / _STD
