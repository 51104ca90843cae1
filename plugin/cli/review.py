"""`ram-annotate fiftyone send-review|load-reviews|finetune|tune-thresholds`: the review round from a shell.

Same params objects and job functions as the operators. Label Studio's URL and key come
from LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (the names of the plugin secrets); the
key is never a flag, so it stays out of shell history and process lists.
"""
from __future__ import annotations

import argparse

from plugin.cli.common import add_job, model_params, progress, run, target
from plugin.review_round.params import (
    DEFAULT_WEIGHTS,
    FinetuneJobParams,
    LoadReviewsParams,
    SendReviewParams,
    ThresholdJobParams,
)
from ram_model.cli.options import add_option_flags
from ram_model.finetune.config import TRAINING_OPTIONS
from ram_model.option import declared_options
from ram_model.review import TuningOptions

__all__ = ["add_review_commands"]


def add_review_commands(jobs: argparse._SubParsersAction) -> None:
    p = add_job(jobs, "send-review", "choose a review batch and create Label Studio tasks (one round)",
                SendReviewParams, _cmd_send)
    for name, weight in DEFAULT_WEIGHTS.items():
        p.add_argument(f"--{name}-weight", type=float, default=weight, help=f"share of the batch chosen by {name}")
    add_job(jobs, "load-reviews", "write the Label Studio reviews into <label-field>_reviewed", LoadReviewsParams,
            _cmd_load)
    p = add_job(jobs, "finetune", "fine-tune RAM on reviewed labels and register the new version",
                FinetuneJobParams, _cmd_finetune, model=True, server=True)
    add_option_flags(p.add_argument_group("training"), TRAINING_OPTIONS, env=False)
    p = add_job(jobs, "tune-thresholds", "tune per-class thresholds on reviewed labels", ThresholdJobParams,
                _cmd_tune, model=True, server=True)
    add_option_flags(p.add_argument_group("tuning"), declared_options(TuningOptions), env=False)


def _ls():  # type: ignore[no-untyped-def]
    from plugin.review_round.params import LabelStudioSettings

    return LabelStudioSettings.from_secrets()


def _cmd_send(args: argparse.Namespace) -> int:
    from plugin.review_round.send_review import send_review_batch

    def job():  # type: ignore[no-untyped-def]
        params = SendReviewParams.from_mapping(vars(args))
        settings = _ls()
        with settings.client() as ls:
            return send_review_batch(target(args), params, ls,
                                     document_root=params.document_root or settings.document_root,
                                     progress=progress(args, "sending"))

    return run(job)


def _cmd_load(args: argparse.Namespace) -> int:
    from plugin.review_round.load_reviews import load_reviews

    def job():  # type: ignore[no-untyped-def]
        with _ls().client() as ls:
            return load_reviews(target(args), LoadReviewsParams.from_mapping(vars(args)), ls,
                                progress=progress(args, "writing"))

    return run(job)


def _cmd_finetune(args: argparse.Namespace) -> int:
    from plugin.review_round.finetune import finetune_on_reviews

    def job():  # type: ignore[no-untyped-def]
        return finetune_on_reviews(target(args), FinetuneJobParams.from_mapping(vars(args)), model_params(args),
                                   progress=progress(args, "training"))

    return run(job)


def _cmd_tune(args: argparse.Namespace) -> int:
    from plugin.review_round.tune_thresholds import tune_thresholds_on_reviews

    def job():  # type: ignore[no-untyped-def]
        return tune_thresholds_on_reviews(target(args), ThresholdJobParams.from_mapping(vars(args)), model_params(args),
                                          progress=progress(args, "scoring"))

    return run(job)
