"""One box per evidence map: the region around the map's peak, in normalised image coordinates.

Rule (documented in the README): cells whose value is at least `BOX_THRESHOLD` (0.5) of the
map's maximum, the 4-connected region of them that holds the peak, and the bounding box of
its cells. The preprocessing stretches the whole image to S x S (no crop, no letterbox), so
cell (r, c) of a G x G grid covers x in [c/G, (c+1)/G] and y in [r/G, (r+1)/G] of the image
as displayed (after the EXIF rotation the decoder applies). Boxes are therefore coarse: whole
cells, 1/12 of the width at 384 px.
"""
from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["BOX_THRESHOLD", "box_from_map"]

BOX_THRESHOLD = 0.5


def box_from_map(heat: np.ndarray, threshold: float = BOX_THRESHOLD) -> list[float] | None:
    """[x0, y0, x1, y1] in 0..1 for a (G, G) map, or None when the map holds no positive evidence."""
    if heat.ndim != 2 or heat.size == 0:
        raise ValueError(f"an evidence map must be a 2-D grid, got shape {heat.shape}")
    peak = float(np.max(heat))
    if not np.isfinite(peak) or peak <= 0.0:
        return None
    rows, cols = heat.shape
    inside = heat >= threshold * peak
    start = np.unravel_index(int(np.argmax(heat)), heat.shape)
    seen = np.zeros_like(inside)
    seen[start] = True
    queue = deque([start])
    r0, c0, r1, c1 = start[0], start[1], start[0], start[1]
    while queue:
        r, c = queue.popleft()
        r0, r1, c0, c1 = min(r0, r), max(r1, r), min(c0, c), max(c1, c)
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < rows and 0 <= nc < cols and inside[nr, nc] and not seen[nr, nc]:
                seen[nr, nc] = True
                queue.append((nr, nc))
    return [c0 / cols, r0 / rows, (c1 + 1) / cols, (r1 + 1) / rows]
