"""`ram-annotate fiftyone detect` and `detect-disagreements`: the grounded-detection jobs without the App."""
from __future__ import annotations

import argparse
from typing import Any

from plugin.cli.common import add_target, model_params, progress, run, target
from ram_model.cli.options import add_model_options

__all__ = ["add_detect_commands"]


def add_detect_commands(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("detect", help="write boxes (and SAM masks) of RAM's tags into a Detections field (resumable)")
    add_target(p)
    p.add_argument("--field", default="ram_detections", help="output field (default: ram_detections)")
    p.add_argument("--detector", default="grounding-dino-tiny",
                   help="grounding-dino-tiny (default), grounding-dino-base, owlv2, a repo id, a folder, random:tiny")
    p.add_argument("--segmenter", help="sam, sam-large, a repo id, a folder or random:tiny: adds instance masks")
    p.add_argument("--box-threshold", type=float, help="Grounding DINO 0.25, OWLv2 0.1 by default")
    p.add_argument("--text-threshold", type=float, help="Grounding DINO 0.2 by default")
    p.add_argument("--label-field", help="prompt only RAM tags mapping onto this field's classes; boxes take their names")
    p.add_argument("--synonyms", help="JSON/YAML mapping of label -> RAM tag(s)")
    p.add_argument("--overwrite", action="store_true", help="replace detections made by other models or settings")
    p.add_argument("--chunk-size", type=int, default=16, help="samples per write (default: 16)")
    add_model_options(p)

    def command(args: argparse.Namespace) -> int:
        from plugin.models.engine_cache import engine_config
        from plugin.jobs.detect import DetectParams, detect_samples, get_labeler

        def job() -> Any:
            options = model_params(args)
            params = DetectParams(field=args.field, detector=args.detector, segmenter=args.segmenter,
                                  box_threshold=args.box_threshold, text_threshold=args.text_threshold,
                                  label_field=args.label_field, synonyms=args.synonyms,
                                  policy=options.options.threshold_policy(), overwrite=args.overwrite,
                                  chunk_size=args.chunk_size)
            labeler = get_labeler(engine_config(options), params)
            return detect_samples(target(args), labeler, params, progress=progress(args, "detecting"))

        return run(job)

    p.set_defaults(func=command, server_url=None)  # in-process models only (no --server-url)

    q = jobs.add_parser("detect-disagreements", help="flag likely missing / wrong boxes against a Detections "
                                                    "field (FiftyOne's evaluate_detections) and save a ranked view")
    add_target(q)
    q.add_argument("--pred-field", default="ram_detections", help="RAM's detections (default: ram_detections)")
    q.add_argument("--gt-field", default="ground_truth", help="the existing boxes (default: ground_truth)")
    q.add_argument("--iou", type=float, default=0.5, help="match IoU (default: 0.5)")
    q.add_argument("--min-score", type=float, default=0.5, help="confidence a detection needs to count as "
                                                                 "likely missing (default: 0.5)")
    q.add_argument("--output", help="output prefix (default: <pred>_vs_<gt>)")
    q.add_argument("--overwrite", action="store_true")

    def disagreements(args: argparse.Namespace) -> int:
        from plugin.jobs.detect_disagreements import DetectDisagreementParams, find_detection_disagreements

        params = DetectDisagreementParams(pred_field=args.pred_field, gt_field=args.gt_field, iou=args.iou,
                                          min_score=args.min_score, output=args.output, overwrite=args.overwrite)
        return run(lambda: find_detection_disagreements(target(args), params,
                                                        progress=progress(args, "comparing")))

    q.set_defaults(func=disagreements)
