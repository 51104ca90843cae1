"""Operator: Send a review batch to Label Studio (one active-learning round)."""
from __future__ import annotations

from collections.abc import Callable

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.operators.base import RamOperator
from plugin.operators.inputs import add_label_field_choice, add_option_inputs, add_ram_field_choice
from plugin.operators.review_inputs import add_label_studio_status, label_studio_settings
from plugin.review_round.params import DEFAULT_WEIGHTS, SendReviewParams
from plugin.review_round.send_review import send_review_batch
from ram_model.option import declared_option, declared_options

__all__ = ["SendReviewBatch"]

_WEIGHT_HELP = {
    "disagreement": "RAM and the labels disagree (fixes labels)",
    "uncertainty": "RAM is least sure (teaches the model most)",
    "diversity": "covers images unlike those already chosen",
}


class SendReviewBatch(RamOperator):
    name = "send_review_batch"
    label = "Send RAM review batch to Label Studio"
    icon = "outbox"
    description = "Choose the samples most worth reviewing and create Label Studio tasks with RAM's prediction"
    verb = "Choose from"
    progress_label = "Sending"
    result_title = "Review batch sent"
    result_labels = {
        "message": "Result",
        "project_url": "Label Studio project",
        "round": "Round",
        "sent": "Tasks created",
        "already_sent": "Already in Label Studio",
        "local_files": "Images served from local files",
        "uploaded": "Images uploaded",
        "pool": "Samples not yet sent",
        "diversity_source": "Diversity computed on",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        add_label_studio_status(ctx, inputs)
        label_field = add_label_field_choice(ctx, inputs, "label_field", label="Label field to review",
                                             required=True,
                                             description=declared_option(SendReviewParams, "label_field").description)
        add_ram_field_choice(ctx, inputs, "ram_field")
        for name, weight in DEFAULT_WEIGHTS.items():
            inputs.float(f"{name}_weight", label=f"{name.capitalize()} weight", default=weight,
                         description=_WEIGHT_HELP[name])
        add_option_inputs(inputs, declared_options(SendReviewParams))
        if label_field:
            inputs.view("fields_notice", types.Notice(
                label=f"Sent samples are marked in {label_field}_ls_task / {label_field}_ls_round"))

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        params = SendReviewParams.from_mapping(ctx.params)
        settings = label_studio_settings(ctx)
        with settings.client() as ls:
            return send_review_batch(ctx.target_view(), params, ls,
                                     document_root=params.document_root or settings.document_root,
                                     progress=progress)
