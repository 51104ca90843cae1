"""`ram-annotate demo`: what a newcomer without the weights can run.

The picture is drawn here rather than shipped, so the demo works from an installed
package as well as from a checkout. Tags come from `random:tiny` (random weights).
"""
from __future__ import annotations

from pathlib import Path

from ..model.config import PRESETS
from ..inference.options import DEFAULT_CHECKPOINT
from ..weights.scene import draw_scene

__all__ = ["DEMO_BANNER", "write_demo_picture"]

_PRESET = PRESETS[DEFAULT_CHECKPOINT]
DEMO_BANNER = (
    "DEMO: these tags come from random:tiny, a tiny model with RANDOM weights; they mean nothing.\n"
    f"For real tags, download the weights once (3 GB): `hf download {_PRESET.hf_repo} {_PRESET.hf_filename} "
    "--local-dir .`\n"
    f"then: `ram-annotate tag YOUR_IMAGES/ --checkpoint {_PRESET.hf_filename} --output tags.jsonl`"
)


def write_demo_picture(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """The demo's picture, as a PNG at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_scene(size).save(path)
    return path
