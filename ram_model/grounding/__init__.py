"""Grounded detection and segmentation from RAM's tags (issue 19, the Grounded-SAM recipe).

RAM tags an image; its fired tags prompt a zero-shot detector (Grounding DINO or OWLv2,
through Hugging Face `transformers`); SAM turns each box into a mask. Weights come from the
local Hugging Face cache; `random:tiny` builds tiny random-weight models for trying and tests.
`transformers` is an optional extra (`pip install ram-annotate[grounding]`): this package
imports it only when a model is loaded.
"""
from .nms import box_iou, nms
from .rle import decode_rle, encode_rle
from .types import Detection

__all__ = ["Detection", "GroundedLabeler", "GroundedResult", "box_iou", "nms", "encode_rle", "decode_rle",
           "load_detector", "load_segmenter", "DEFAULT_DETECTOR", "DEFAULT_SEGMENTER"]


def __getattr__(name: str):
    if name in ("GroundedLabeler", "GroundedResult"):
        from . import pipeline

        return getattr(pipeline, name)
    if name in ("load_detector", "load_segmenter", "DEFAULT_DETECTOR", "DEFAULT_SEGMENTER"):
        from . import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'ram_model.grounding' has no attribute {name!r}")
