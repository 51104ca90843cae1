"""`random:tiny`: a checkpoint value that needs no download, for trying the tools out.

It names a tiny RAM++ with random weights over 48 real tag names, built on first use and
kept in the cache folder as a self-contained `.safetensors` file (configs, vocabulary and
the random-weights marker in its metadata), so it loads like any converted checkpoint and
every tool marks its output as random. Its class thresholds are set from the model's own
outputs on a fixed set of synthetic pictures, so that a few tags fire on most images;
random weights would otherwise fire none at the official thresholds. The tags mean nothing.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..model.config import packaged_file
from ..errors import CheckpointNotFoundError
from ..model.preprocess import to_model_input
from ..model.ram import RAMTagger
from ..model.vocab import TagVocabulary, read_lines

__all__ = ["RANDOM_PREFIX", "RANDOM_PRESETS", "random_checkpoint"]

RANDOM_PREFIX = "random:"
RANDOM_PRESETS = ("tiny",)
# Bump when the file's content would change, so an old cached copy is not reused.
_FORMAT_VERSION = 1
_SEED = 0
# Each tag fires on the top 15% of the calibration pictures: a handful of tags per picture.
_FIRING_QUANTILE = 0.85


def _default_cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ram-annotate"


def _calibration_pictures(size: int = 80) -> list[Image.Image]:
    """Noise, flat colours, gradients and drawn scenes: varied enough that every class's output spreads."""
    from .scene import draw_scene

    rng = np.random.default_rng(_SEED)
    pictures = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(8)]
    pictures += [Image.new("RGB", (size, size), c) for c in ("red", "green", "blue", "white", "black", "yellow",
                                                             "gray", "orange")]
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(1, 9):
        arr = np.stack([(xx * k) % 256, (yy * (9 - k)) % 256, ((xx + yy) * k // 2) % 256], axis=-1)
        pictures.append(Image.fromarray(arr.astype(np.uint8)))
    pictures += [draw_scene((320, 240), rng) for _ in range(16)] + [draw_scene((320, 240))]
    return pictures


def _calibrated_thresholds(model: RAMTagger, image_size: int) -> np.ndarray:
    batch = torch.stack([to_model_input(p, image_size) for p in _calibration_pictures()])
    with torch.inference_mode():
        logits, _ = model.forward_with_embedding(batch)
    probs = torch.sigmoid(logits.float()).numpy()
    return np.quantile(probs, _FIRING_QUANTILE, axis=0).astype(np.float32)


def _tiny_vocabulary(thresholds: np.ndarray) -> TagVocabulary:
    from .testing import TINY_TAGS

    names = [n.strip() for n in read_lines(packaged_file("ram_tag_list.txt"))]
    names_zh = [n.strip() for n in read_lines(packaged_file("ram_tag_list_chinese.txt"))]
    index = {n: i for i, n in enumerate(names)}
    return TagVocabulary(TINY_TAGS, tuple(names_zh[index[t]] for t in TINY_TAGS), thresholds)


def _build(path: Path) -> Path:
    from .convert import write_tagger_file
    from .testing import TINY_HEAD, TINY_SWIN, TINY_TAGS, random_init_

    model = random_init_(RAMTagger(TINY_SWIN, TINY_HEAD, len(TINY_TAGS), "ram_plus"), _SEED).eval()
    vocab = _tiny_vocabulary(_calibrated_thresholds(model, TINY_SWIN.image_res))
    return write_tagger_file(model, path, variant="ram_plus", swin=TINY_SWIN, head=TINY_HEAD, vocab=vocab,
                             random_weights=True, source_model_version="random:tiny", dtype="fp32")


def random_checkpoint(ref: str, *, cache_dir: str | None = None) -> Path:
    """The file `random:<name>` stands for, built into the cache folder on first use."""
    name = ref[len(RANDOM_PREFIX):]
    if name not in RANDOM_PRESETS:
        raise CheckpointNotFoundError(
            f"unknown random checkpoint {ref!r}; choose one of {', '.join(RANDOM_PREFIX + n for n in RANDOM_PRESETS)}")
    file_name = f"random-{name}-v{_FORMAT_VERSION}.safetensors"
    folders = [Path(cache_dir) if cache_dir else _default_cache_folder(),
               Path(tempfile.gettempdir()) / f"ram-annotate-{os.getuid() if hasattr(os, 'getuid') else 'user'}"]
    last_error: OSError | None = None
    for folder in folders:
        path = folder / file_name
        if path.is_file():
            return path
        try:
            return _build(path)
        except OSError as e:  # a read-only home: try the temporary folder
            last_error = e
    raise CheckpointNotFoundError(f"cannot write the random checkpoint into {folders[0]} or {folders[1]}: "
                                  f"{last_error}")
