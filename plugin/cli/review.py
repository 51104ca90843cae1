"""`ram-annotate fiftyone send-review|load-reviews|finetune|tune-thresholds`: the review round from a shell.

Same params objects and job functions as the operators. Label Studio's URL and key come
from LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (the names of the plugin secrets); the
key is never a flag, so it stays out of shell history and process lists.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from plugin.cli.common import model_params, progress, run, target
from plugin.review_round.params import FinetuneJobParams, ThresholdJobParams
from ram_model.cli.options import add_model_options, add_option_flags
from ram_model.finetune.config import TRAINING_OPTIONS
from ram_model.model.option import declared_options

__all__ = ["add_review_commands"]


def add_review_commands(jobs: argparse._SubParsersAction, *, add_target: Callable[[argparse.ArgumentParser], None],
                        add_server: Callable[[argparse.ArgumentParser], None]) -> None:
    p = jobs.add_parser("send-review", help="choose a review batch and create Label Studio tasks (one round)")
    add_target(p)
    p.add_argument("--label-field", required=True, help="field to review (its labels become the choices)")
    p.add_argument("--ram-field", default="ram")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--disagreement-weight", type=float, default=0.5)
    p.add_argument("--uncertainty-weight", type=float, default=0.3)
    p.add_argument("--diversity-weight", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project-title", help="Label Studio project title (default: '<dataset> / <field>')")
    p.add_argument("--classes", help="comma-separated extra labels to offer")
    p.add_argument("--synonyms", help="JSON/YAML mapping of label -> RAM tag(s)")
    p.add_argument("--embeddings-field", help="vector field for diversity (default: RAM's tag confidences)")
    p.add_argument("--document-root", help="Label Studio local-files root (default: "
                                           "$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT); other images are uploaded")
    p.add_argument("--new-round", action="store_true", help="start a round although the last is not fully reviewed")
    p.set_defaults(func=_cmd_send)

    p = jobs.add_parser("load-reviews", help="write the Label Studio reviews into <label-field>_reviewed")
    add_target(p)
    p.add_argument("--label-field", required=True, help="the field whose batches were sent")
    p.add_argument("--output", help="output field (default: <label-field>_reviewed)")
    p.add_argument("--overwrite", action="store_true", help="replace an output field Load reviews did not write")
    p.add_argument("--project-id", type=int, help="read this Label Studio project (tasks written by `export` and "
                                                   "imported there) instead of the one a review batch went to")
    p.set_defaults(func=_cmd_load)

    for name, help_text in (("finetune", "fine-tune RAM on reviewed labels and register the new version"),
                            ("tune-thresholds", "tune per-class thresholds on reviewed labels")):
        p = jobs.add_parser(name, help=help_text)
        add_target(p)
        params_cls = FinetuneJobParams if name == "finetune" else ThresholdJobParams
        add_option_flags(p, declared_options(params_cls), env=False)
        if name == "finetune":
            add_option_flags(p.add_argument_group("training"), TRAINING_OPTIONS, env=False)
        add_model_options(p)
        p.set_defaults(func=_cmd_finetune if name == "finetune" else _cmd_tune)
        add_server(p)


def _ls():  # type: ignore[no-untyped-def]
    from plugin.review_round.params import LabelStudioSettings

    return LabelStudioSettings.from_secrets()


def _cmd_send(args: argparse.Namespace) -> int:
    from plugin.review_round.send_review import send_review_batch
    from plugin.review_round.params import SendReviewParams

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
    from plugin.review_round.params import LoadReviewsParams

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
