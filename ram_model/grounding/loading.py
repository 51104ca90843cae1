"""Resolving `--detector` / `--segmenter` values to loaded models.

A value is `random:tiny` (tiny random weights built on the spot: `tiny.py`; `random:tiny-owlv2`
for OWLv2), a short name (`grounding-dino-tiny`, `grounding-dino-base`, `owlv2`, `sam`,
`sam-large`, `sam-huge`), a Hugging Face repo id, or a local folder saved with `save_pretrained`.
Repos are read from the local Hugging Face cache only, like our checkpoints, and a repo that
is not there is one line naming the `hf download` command; nothing is fetched behind the
user's back (a 700 MB detector appearing mid-run is a surprise, not a feature).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import torch

from ..errors import CheckpointNotFoundError, ConfigError
from .detectors import GroundingDinoDetector, Owlv2Detector, ZeroShotDetector
from .segmenter import SamSegmenter
from .tiny import TINY_PRESETS, tiny_grounding_dino, tiny_owlv2, tiny_sam

__all__ = ["DETECTOR_ALIASES", "SEGMENTER_ALIASES", "load_detector", "load_segmenter"]

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
DEFAULT_SEGMENTER = "facebook/sam-vit-base"
DETECTOR_ALIASES = {
    "grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
    "grounding-dino-base": "IDEA-Research/grounding-dino-base",
    "owlv2": "google/owlv2-base-patch16-ensemble",
}
SEGMENTER_ALIASES = {"sam": "facebook/sam-vit-base", "sam-large": "facebook/sam-vit-large",
                     "sam-huge": "facebook/sam-vit-huge"}
_RANDOM = "random:"
_FAMILIES = {"grounding-dino": GroundingDinoDetector, "owlv2": Owlv2Detector}


def _not_cached(kind: str, repo: str, error: Exception) -> CheckpointNotFoundError:
    return CheckpointNotFoundError(
        f"{kind} {repo!r} is not in the local Hugging Face cache ({type(error).__name__}); on a machine with "
        f"internet run `hf download {repo}`, copy the cache folder (~/.cache/huggingface) here, or pass a local "
        f"folder; to try without weights use --{kind} random:tiny")


def _need_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        raise ConfigError("grounded detection needs Hugging Face transformers: "
                          "pip install 'ram-annotate[grounding]' (transformers, tokenizers)") from e


def _words_digest(words: list[str]) -> str:
    return hashlib.sha256("\n".join(words).encode()).hexdigest()[:8]


def _pretrained(kind: str, ref: str, cache_dir: str | None):
    """(config, where to load from, version string) of a cached repo or a local folder."""
    from transformers import AutoConfig

    local = Path(ref).expanduser()
    source = str(local) if local.is_dir() else ref
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True, cache_dir=cache_dir)
    except (OSError, ValueError) as e:
        if local.is_dir():
            raise ConfigError(f"{kind} folder {ref!r} holds no transformers model ({e})") from e
        raise _not_cached(kind, ref, e) from e
    commit = getattr(config, "_commit_hash", None)
    version = f"{ref.rstrip('/').rsplit('/', 1)[-1]}" + (f"@{commit[:8]}" if commit else "")
    return config, source, version


def load_detector(ref: str, *, device: torch.device | str = "cpu", words: Iterable[str] = (),
                  cache_dir: str | None = None, box_threshold: float | None = None,
                  text_threshold: float | None = None, nms_iou: float = 0.5,
                  batch_size: int | None = None) -> ZeroShotDetector:
    """A Grounding DINO or OWLv2 detector. `words`: the tag names a `random:` tokenizer is built from."""
    _need_transformers()
    device = torch.device(device)
    options = dict(device=device, box_threshold=box_threshold, text_threshold=text_threshold, nms_iou=nms_iou,
                   batch_size=batch_size)
    if ref.startswith(_RANDOM):
        family = TINY_PRESETS.get(ref[len(_RANDOM):])
        if family is None:
            raise ConfigError(f"--detector {ref!r}: random presets are {', '.join(_RANDOM + n for n in TINY_PRESETS)}")
        words = list(words)
        build = tiny_grounding_dino if family == "grounding-dino" else tiny_owlv2
        model, tokenizer, processor = build(words)
        return _FAMILIES[family](model, tokenizer, processor, random_weights=True,
                                 version=f"random-{family}-{_words_digest(words)}", **options)
    ref = DETECTOR_ALIASES.get(ref, ref)
    config, source, version = _pretrained("detector", ref, cache_dir)
    kw = dict(local_files_only=True, cache_dir=cache_dir)
    if config.model_type == "grounding-dino":
        from transformers import AutoTokenizer, GroundingDinoForObjectDetection
        from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
            GroundingDinoImageProcessorPil)

        model = GroundingDinoForObjectDetection.from_pretrained(source, **kw)
        parts = AutoTokenizer.from_pretrained(source, **kw), GroundingDinoImageProcessorPil.from_pretrained(source, **kw)
    elif config.model_type == "owlv2":
        from transformers import AutoTokenizer, Owlv2ForObjectDetection
        from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

        model = Owlv2ForObjectDetection.from_pretrained(source, **kw)
        parts = AutoTokenizer.from_pretrained(source, **kw), Owlv2ImageProcessorPil.from_pretrained(source, **kw)
    else:
        raise ConfigError(f"--detector {ref!r} is a {config.model_type!r} model; use Grounding DINO or OWLv2")
    return _FAMILIES[config.model_type](model, *parts, random_weights=False, version=version, **options)


def load_segmenter(ref: str, *, device: torch.device | str = "cpu", cache_dir: str | None = None,
                   batch_size: int | None = None) -> SamSegmenter:
    """A SAM segmenter (`random:tiny`, a SAM repo id or folder)."""
    _need_transformers()
    device = torch.device(device)
    if ref.startswith(_RANDOM):
        if ref != f"{_RANDOM}tiny":
            raise ConfigError(f"--segmenter {ref!r}: the random preset is random:tiny")
        model, processor = tiny_sam()
        return SamSegmenter(model, processor, version="random-sam-tiny", random_weights=True, device=device,
                            batch_size=batch_size)
    ref = SEGMENTER_ALIASES.get(ref, ref)
    config, source, version = _pretrained("segmenter", ref, cache_dir)
    if config.model_type != "sam":
        raise ConfigError(f"--segmenter {ref!r} is a {config.model_type!r} model; use SAM (facebook/sam-vit-*)")
    from transformers import SamModel
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    kw = dict(local_files_only=True, cache_dir=cache_dir)
    return SamSegmenter(SamModel.from_pretrained(source, **kw), SamImageProcessorPil.from_pretrained(source, **kw),
                        version=version, random_weights=False, device=device, batch_size=batch_size)
