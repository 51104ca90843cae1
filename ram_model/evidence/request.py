"""What evidence a caller asks for, and what comes back per tag."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["EvidenceRequest", "TagEvidence", "MAP_DECIMALS"]

# Maps are written rounded: three decimals are far below what a 12 x 12 attention map resolves.
MAP_DECIMALS = 3


@dataclass(frozen=True)
class EvidenceRequest:
    """Which tags of each image get a map.

    `tags`: these tag names for every image (in this order), whether they fired or not.
    `select`: a function of one image's probabilities (K,) (the engine's vocabulary order)
    returning the vocabulary positions to map, e.g. a `ThresholdPolicy`'s fired tags.
    Neither: the tags that fire at the vocabulary's class thresholds.
    """

    tags: tuple[str, ...] | None = None
    select: Callable[[np.ndarray], Sequence[int]] | None = None

    def __post_init__(self) -> None:
        if self.tags is not None and self.select is not None:
            raise ValueError("name tags or give a select function, not both")
        if self.tags is not None:
            if isinstance(self.tags, str):
                raise ValueError("tags must be a sequence of tag names, not one string")
            object.__setattr__(self, "tags", tuple(dict.fromkeys(str(t) for t in self.tags)))


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
