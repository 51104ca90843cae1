"""`ram-annotate detect`: boxes (and masks) for each image's RAM tags, as JSON Lines (ram_model.grounding).

One row per image, resumable like `tag` (the same resume rule and writer: `cli/tag_rows`):
`{"path", "realpath", "model_version", "policy", "tags": [names], "width", "height",
"detections": [{"label", "score", "box": [x0, y0, x1, y1] normalised 0..1, "mask"?}], "error"}`.
`mask` is COCO-style uncompressed RLE (`ram_model.grounding.rle`): `{"size": [h, w], "counts": [...]}`,
runs over the mask read column by column, starting with a run of zeros.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from ..inference.inputs import image_identity
from .options import add_model_options, engine_config_from_args, threshold_policy_from_args
from .tag_rows import expand_inputs, plan_todo, policy_digest, write_rows

__all__ = ["register", "detect_model_version"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="boxes (and SAM masks) for each image's RAM tags; JSON Lines",
                       description="Tag each image with RAM, prompt a zero-shot detector (Grounding DINO or OWLv2) "
                                   "with its fired tags, keep boxes after NMS, and optionally segment each box "
                                   "with SAM (the Grounded-SAM recipe). Re-running with the same --output resumes.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_model_options(p)
    g = p.add_argument_group("grounding")
    g.add_argument("--detector", default="grounding-dino-tiny", metavar="DET",
                   help="grounding-dino-tiny (default), grounding-dino-base, owlv2, a Hugging Face repo id, a local "
                        "folder, or random:tiny / random:tiny-owlv2 (tiny random weights: boxes mean nothing)")
    g.add_argument("--segmenter", metavar="SEG", help="sam, sam-large, sam-huge, a repo id, a folder or random:tiny; "
                                                      "adds a 'mask' (RLE) to each detection")
    g.add_argument("--box-threshold", type=float, help="keep boxes scoring above this (Grounding DINO 0.25, OWLv2 0.1)")
    g.add_argument("--text-threshold", type=float, help="Grounding DINO: a box's phrase must score above this (0.2)")
    g.add_argument("--nms-iou", type=float, default=0.5, help="class-agnostic NMS IoU (default: 0.5)")
    g.add_argument("--detector-batch-size", type=int, metavar="N", help="images per detector pass "
                                                                        "(default: 1 on CPU, 8 on GPU)")
    p.add_argument("--output", "-o", help="JSON Lines file (default: stdout); re-running skips images already in it")
    p.add_argument("--retry-errors", action="store_true", help="on resume, redo images that failed before")
    p.add_argument("--overwrite", action="store_true", help="start the output file afresh")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_detect)


def detect_model_version(labeler: Any) -> str:
    """RAM's version + the detector's (+ the segmenter's); starts with 'random-' when any weights are random."""
    parts = [labeler.engine.model_version, labeler.detector.version]
    if labeler.segmenter is not None:
        parts.append(labeler.segmenter.version)
    version = "+".join(parts)
    return version if not labeler.random_weights or version.startswith("random-") else f"random-{version}"


def _policy(labeler: Any, tag_digest: str) -> str:
    d = labeler.detector
    text = f"{tag_digest}|{d.box_threshold}|{d.text_threshold}|{d.nms_iou}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _row(result: Any, version: str, policy: str, random_weights: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"path": result.source, "realpath": image_identity(result.source),
                           "model_version": version, "policy": policy}
    if random_weights:
        row["random_weights"] = True
    row["tags"] = [t.name for t in result.tags]
    if result.size is not None:
        row["width"], row["height"] = result.size
    row["detections"] = [d.to_dict() for d in result.detections]
    row["error"] = result.error
    return row


def build_labeler(args: argparse.Namespace):
    """The engine, detector and segmenter the flags name (shared with the server's settings)."""
    from ..grounding import GroundedLabeler, load_detector, load_segmenter
    from .main import _load_engine

    engine = _load_engine(args)
    detector = load_detector(args.detector, device=engine.device, words=engine.vocab.names,
                             box_threshold=args.box_threshold, text_threshold=args.text_threshold,
                             nms_iou=args.nms_iou, batch_size=args.detector_batch_size)
    segmenter = load_segmenter(args.segmenter, device=engine.device) if args.segmenter else None
    return GroundedLabeler(engine, detector, segmenter, threshold_policy_from_args(args))


def _cmd_detect(args: argparse.Namespace) -> int:
    from .main import _fail

    paths = expand_inputs(args)
    out_path = Path(args.output) if args.output else None
    if out_path is not None and (out_path.is_dir() or not out_path.absolute().parent.is_dir()):
        return _fail(f"--output {out_path}: name a file in an existing folder")
    engine_config_from_args(args)  # a bad model flag fails before the detector loads
    labeler = build_labeler(args)
    if labeler.detector.random_weights or (labeler.segmenter is not None and labeler.segmenter.random_weights):
        print("WARNING: the detector or segmenter has random weights (random:tiny); its boxes and masks mean "
              "nothing.", file=sys.stderr)
    version = detect_model_version(labeler)
    policy = _policy(labeler, policy_digest(labeler.thresholds, labeler.policy))
    todo = plan_todo(args, paths, out_path, (version, policy))
    rows = ([_row(result, version, policy, labeler.random_weights)] for result in labeler.run(todo))
    return write_rows(args, out_path, rows, len(todo), verb="processed")
