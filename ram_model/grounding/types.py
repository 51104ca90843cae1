"""What a grounded detector returns for one image."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .rle import encode_rle

__all__ = ["Detection"]


@dataclass
class Detection:
    """One box: `box` is [x0, y0, x1, y1] normalised to 0..1 of the image's width and height.

    `phrase_index` points into the phrases the detector was prompted with; `label` is the
    tag name (or the project label) it maps back to. `mask` is an (h, w) boolean array at
    the image's size when a segmenter ran.
    """

    phrase_index: int
    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"label": self.label, "score": round(float(self.score), 6),
                               "box": [round(float(v), 6) for v in self.box]}
        if self.mask is not None:
            row["mask"] = encode_rle(self.mask)
        return row
