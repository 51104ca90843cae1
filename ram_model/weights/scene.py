"""A drawn landscape: the demo's picture, and part of the random preset's calibration set.

Drawn rather than shipped, so both work from an installed package. It lives with the
weights because `random:tiny` needs it to set its class thresholds (weights never import
the command line).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["draw_scene"]


def draw_scene(size: tuple[int, int], rng: np.random.Generator | None = None) -> Image.Image:
    """A small landscape (sky, sun, hill, a house); `rng` varies its colours and layout."""
    w, h = size
    jitter = (lambda lo, hi: float(rng.uniform(lo, hi))) if rng is not None else (lambda lo, hi: (lo + hi) / 2)
    sky = (int(jitter(40, 140)), int(jitter(110, 190)), int(jitter(180, 255)))
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(h):  # sky fading towards the horizon
        t = y / h
        draw.line([(0, y), (w, y)], fill=(int(sky[0] + 100 * t), int(sky[1] + 60 * t), sky[2]))
    sx, sy = jitter(0.6, 0.85), jitter(0.05, 0.15)
    draw.ellipse([w * sx, h * sy, w * (sx + 0.14), h * (sy + 0.19)], fill=(255, int(jitter(180, 240)), 90))
    ground = (int(jitter(50, 110)), int(jitter(130, 190)), int(jitter(40, 80)))
    draw.polygon([(0, h * 0.7), (w * jitter(0.25, 0.45), h * jitter(0.35, 0.5)), (w * 0.7, h * 0.7)],
                 fill=tuple(c - 20 for c in ground))
    draw.rectangle([0, h * 0.68, w, h], fill=ground)
    hx = jitter(0.35, 0.55)
    draw.rectangle([w * hx, h * 0.5, w * (hx + 0.2), h * 0.8], fill=(int(jitter(150, 230)), 80, 60))
    draw.polygon([(w * (hx - 0.02), h * 0.5), (w * (hx + 0.1), h * 0.36), (w * (hx + 0.22), h * 0.5)],
                 fill=(120, 50, 40))
    return img
