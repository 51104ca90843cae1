"""Label Studio tasks whose coloured shapes decide their tags (a signal a fine-tune can
learn): `ram_model.weights.testing.draw_shapes` images as PNG bytes, with the tags they show."""
from __future__ import annotations

import io

import numpy as np

from ram_model.weights.testing import SHAPE_CLASSES, draw_shapes

SHAPE_TAGS = ("dog", "cat", "car")


def shape_dataset(count: int, seed: int = 0, size: int = 64) -> list[tuple[bytes, frozenset[str]]]:
    """`count` images holding one to three of dog (red square), cat (blue circle), car (green triangle)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        names = [SHAPE_TAGS[j] for j in rng.choice(3, size=int(rng.integers(1, 4)), replace=False)]
        image = draw_shapes([(n, SHAPE_CLASSES[n]) for n in names], size, seed=seed * 100_003 + i)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        out.append((buf.getvalue(), frozenset(names)))
    return out
