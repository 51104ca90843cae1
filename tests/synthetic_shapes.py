"""Images whose coloured shapes decide their tags: a signal a fine-tune can learn.

`dog` is a red disc, `cat` a blue square, `car` a green bar; each image holds a random
subset of them on a grey, noisy background, so a model that learns the colours tags
held-out images right and one that has not does not.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

SHAPE_TAGS = ("dog", "cat", "car")
_COLOURS = {"dog": (220, 30, 30), "cat": (30, 40, 220), "car": (30, 200, 40)}


def shape_image(tags: set[str] | frozenset[str], seed: int, size: int = 96) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(128 + rng.normal(0, 18, size=(size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for tag in tags:
        x, y = (int(v) for v in rng.integers(8, size - 40, size=2))
        s = int(rng.integers(26, 36))
        if tag == "dog":
            draw.ellipse((x, y, x + s, y + s), fill=_COLOURS[tag])
        elif tag == "cat":
            draw.rectangle((x, y, x + s, y + s), fill=_COLOURS[tag])
        else:
            draw.rectangle((x, y + s // 3, x + s, y + 2 * s // 3), fill=_COLOURS[tag])
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def shape_dataset(count: int, seed: int = 0) -> list[tuple[bytes, frozenset[str]]]:
    """`count` images with a deterministic, varied mix of tags (some with none)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        tags = frozenset(t for t in SHAPE_TAGS if rng.random() < 0.5)
        out.append((shape_image(tags, seed * 1000 + i), tags))
    return out
