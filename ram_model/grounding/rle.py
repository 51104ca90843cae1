"""Masks as COCO-style uncompressed run-length encoding: `{"size": [h, w], "counts": [...]}`.

`counts` are run lengths over the mask read column by column (Fortran order, as COCO and
pycocotools do), starting with a run of zeros (0 when the first pixel is set). A mask of an
object is a few hundred runs instead of h*w values, and any COCO tool reads it back.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["encode_rle", "decode_rle"]


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """(h, w) boolean mask -> {"size": [h, w], "counts": [int, ...]}."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (h, w), got shape {mask.shape}")
    h, w = mask.shape
    flat = mask.flatten(order="F")
    if flat.size == 0:
        return {"size": [int(h), int(w)], "counts": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0] + runs
    return {"size": [int(h), int(w)], "counts": [int(r) for r in runs]}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """The inverse of `encode_rle`: a (h, w) boolean mask."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, not {h}*{w}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape((h, w), order="F")
