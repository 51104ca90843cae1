"""One tag's evidence in one image, as the evidence pass returns it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TagEvidence", "MAP_DECIMALS"]

# Maps are written rounded: three decimals are far below what a 12 x 12 attention map resolves.
MAP_DECIMALS = 3


@dataclass
class TagEvidence:
    """One tag's evidence in one image: its map on the token grid (0..1) and the box drawn from it."""

    name: str
    index: int  # position in the engine's vocabulary
    score: float  # the tag's probability
    map: np.ndarray  # (G, G) float32, max 1 (all 0 when no positive evidence)
    box: list[float] | None  # [x0, y0, x1, y1] normalised; None when the map is all 0

    def to_dict(self) -> dict[str, Any]:
        """The `tag --evidence` row entry: name, map (rounded), box."""
        grid = np.round(self.map.astype(np.float64), MAP_DECIMALS)
        box = None if self.box is None else [round(float(v), 4) for v in self.box]
        return {"name": self.name, "map": grid.tolist(), "box": box}
