"""Label Studio region results from detections: RectangleLabels, BrushLabels and PolygonLabels.

Input detections are ram-annotate's: `box` [x0, y0, x1, y1] normalised to 0..1, optional
`mask` as an (h, w) boolean array. Label Studio stores regions in percent of the image
(x, y, width, height, polygon points) plus `original_width`/`original_height`; brushes are
its own RLE (`label_studio_sdk.converter.brush.mask2rle`, RGBA runs), used as is rather than
re-implemented. Polygons are the outer boundary of the mask's first region in raster order
(a Moore-neighbour trace), thinned to at most `max_points` points.
"""
from __future__ import annotations

import uuid
from typing import Any, Sequence

import numpy as np

__all__ = ["REGION_TYPES", "rectangle_result", "brush_result", "polygon_result", "mask_contour", "region_result"]

# Label Studio control tag (lower case) -> the result `type` and its value key.
REGION_TYPES = {"rectanglelabels": "rectanglelabels", "brushlabels": "brushlabels",
                "polygonlabels": "polygonlabels"}
# Moore neighbourhood, clockwise from west, as (dy, dx).
_AROUND = ((0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1))
_INDEX = {d: i for i, d in enumerate(_AROUND)}


def _base(kind: str, from_name: str, to_name: str, width: int, height: int, score: float) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:10], "from_name": from_name, "to_name": to_name, "type": kind,
            "original_width": int(width), "original_height": int(height), "image_rotation": 0,
            "score": round(float(score), 6)}


def rectangle_result(from_name: str, to_name: str, label: str, score: float, box: Sequence[float],
                     width: int, height: int) -> dict[str, Any]:
    x0, y0, x1, y1 = (min(max(float(v), 0.0), 1.0) for v in box)
    item = _base("rectanglelabels", from_name, to_name, width, height, score)
    item["value"] = {"x": x0 * 100, "y": y0 * 100, "width": (x1 - x0) * 100, "height": (y1 - y0) * 100,
                     "rotation": 0, "rectanglelabels": [label]}
    return item


def brush_result(from_name: str, to_name: str, label: str, score: float, mask: np.ndarray) -> dict[str, Any]:
    try:
        from label_studio_sdk.converter.brush import mask2rle
    except ImportError as e:  # the SDK is what Label Studio's own tools use for this format
        raise ImportError("BrushLabels pre-annotations need label-studio-sdk (pip install label-studio-sdk)") from e
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    item = _base("brushlabels", from_name, to_name, width, height, score)
    item["value"] = {"format": "rle", "rle": [int(v) for v in mask2rle(mask.astype(np.uint8) * 255)],
                     "brushlabels": [label]}
    return item


def mask_contour(mask: np.ndarray, max_points: int = 200) -> list[tuple[float, float]]:
    """(x, y) pixel-centre points of the outer boundary of the mask's first region (raster order), clockwise."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    ys, xs = np.nonzero(m)
    if len(ys) == 0:
        return []
    start = (int(ys[0]), int(xs[0]))  # its west neighbour is background
    points = [start]
    current, back = start, 0  # `back`: direction (from current) of the background pixel we came from
    for _ in range(4 * int(m.sum()) + 8):
        for k in range(1, 9):
            d = (back + k) % 8
            dy, dx = _AROUND[d]
            nxt = (current[0] + dy, current[1] + dx)
            if m[nxt]:
                py, px = _AROUND[(d - 1) % 8]
                previous = (current[0] + py - nxt[0], current[1] + px - nxt[1])
                back = _INDEX.get(previous, (d + 4) % 8)
                current = nxt
                break
        else:
            break  # a single pixel
        if current == start:
            break
        points.append(current)
    if len(points) > max_points:
        points = [points[int(i)] for i in np.linspace(0, len(points) - 1, max_points)]
    return [(x - 1 + 0.5, y - 1 + 0.5) for y, x in points]


def polygon_result(from_name: str, to_name: str, label: str, score: float, mask: np.ndarray,
                   max_points: int = 200) -> dict[str, Any] | None:
    """None when the mask is empty (no region to draw)."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    points = mask_contour(mask, max_points)
    if len(points) < 3:
        return None
    item = _base("polygonlabels", from_name, to_name, width, height, score)
    item["value"] = {"points": [[x * 100 / width, y * 100 / height] for x, y in points], "closed": True,
                     "polygonlabels": [label]}
    return item


def region_result(kind: str, from_name: str, to_name: str, detection: dict[str, Any], width: int,
                  height: int) -> dict[str, Any] | None:
    """One result item of control type `kind` for a detection {"label", "score", "box", "mask"?}.

    Brush and polygon controls need the mask; without one (no segmenter) they fall back to
    the box drawn as a filled mask, so the region is still where the detector put it.
    """
    label, score, box = detection["label"], detection["score"], detection["box"]
    if kind == "rectanglelabels":
        return rectangle_result(from_name, to_name, label, score, box, width, height)
    mask = detection.get("mask")
    if mask is None:
        mask = np.zeros((height, width), dtype=bool)
        x0, y0, x1, y1 = (int(round(v * s)) for v, s in zip(box, (width, height, width, height)))
        mask[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = True
    if kind == "brushlabels":
        return brush_result(from_name, to_name, label, score, mask)
    if kind == "polygonlabels":
        return polygon_result(from_name, to_name, label, score, mask)
    raise ValueError(f"not a region control type: {kind!r} (one of {', '.join(REGION_TYPES)})")
