"""`ram-annotate fiftyone detect` and `detect-disagreements`: the grounded-detection jobs without the App."""
from __future__ import annotations

import argparse
from typing import Any

from plugin.cli.common import add_job, model_params, progress, run, target
from plugin.params import DetectDisagreementParams, DetectParams

__all__ = ["add_detect_commands"]


def add_detect_commands(jobs: argparse._SubParsersAction) -> None:
    p = add_job(jobs, "detect", "write boxes (and SAM masks) of RAM's tags into a Detections field (resumable)",
                DetectParams, _cmd_detect, model=True)
    p.set_defaults(server_url=None)  # in-process models only (no --server-url)
    add_job(jobs, "detect-disagreements", "flag likely missing / wrong boxes against a Detections field "
            "(FiftyOne's evaluate_detections) and save a ranked view", DetectDisagreementParams, _cmd_disagreements)


def _cmd_detect(args: argparse.Namespace) -> int:
    from plugin.jobs.detect import detect_samples, get_labeler
    from plugin.models.engine_cache import engine_config

    def job() -> Any:
        params = DetectParams.from_mapping(vars(args))
        labeler = get_labeler(engine_config(model_params(args)), params)
        return detect_samples(target(args), labeler, params, progress=progress(args, "detecting"))

    return run(job)


def _cmd_disagreements(args: argparse.Namespace) -> int:
    from plugin.jobs.detect_disagreements import find_detection_disagreements

    return run(lambda: find_detection_disagreements(target(args), DetectDisagreementParams.from_mapping(vars(args)),
                                                    progress=progress(args, "comparing")))
