"""Operator: Send a review batch to Label Studio (one active-learning round)."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.operators.inputs import (
    add_label_field_choice,
    add_ram_field_choice,
    add_target_view,
    operator_config,
    progress_reporter,
    result_output,
)
from plugin.review_round.send_review import send_review_batch
from plugin.operators.review_inputs import add_label_studio_status, label_studio_settings
from plugin.review_round.params import DEFAULT_WEIGHTS, SendReviewParams

__all__ = ["SendReviewBatch"]

_RESULT_LABELS = {
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


class SendReviewBatch(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return operator_config(
            "send_review_batch", "Send RAM review batch to Label Studio", "outbox",
            "Choose the samples most worth reviewing and create Label Studio tasks with RAM's prediction",
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Choose from")
        add_label_studio_status(ctx, inputs)
        label_field = add_label_field_choice(ctx, inputs, "label_field", label="Label field to review",
                                             required=True, description="Its labels become the Choices in Label "
                                                                        "Studio; reviews load into <field>_reviewed")
        add_ram_field_choice(ctx, inputs, "ram_field")
        inputs.int("batch_size", label="Batch size", default=SendReviewParams.batch_size, required=True)
        for name, weight in DEFAULT_WEIGHTS.items():
            inputs.float(f"{name}_weight", label=f"{name.capitalize()} weight", default=weight,
                         description={"disagreement": "RAM and the labels disagree (fixes labels)",
                                      "uncertainty": "RAM is least sure (teaches the model most)",
                                      "diversity": "covers images unlike those already chosen"}[name])
        inputs.int("seed", label="Seed", default=0)
        inputs.str("project_title", label="Label Studio project title (optional)", required=False,
                   description="Default: '<dataset> / <label field>'; an existing project is reused")
        inputs.str("classes", label="Extra classes (optional)", required=False,
                   description="Comma-separated labels to offer besides those in the field")
        inputs.str("embeddings_field", label="Embeddings field (optional)", required=False,
                   description="Vectors for diversity; default RAM's tag confidences")
        inputs.str("document_root", label="Label Studio local-files root (optional)", required=False,
                   description="Images under it are served by Label Studio, others uploaded; default: the "
                               "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT secret")
        inputs.bool("new_round", label="Start a new round even if the last one is not fully reviewed",
                    default=False)
        if label_field:
            inputs.view("fields_notice", types.Notice(
                label=f"Sent samples are marked in {label_field}_ls_task / {label_field}_ls_round"))
        return types.Property(inputs, view=types.View(label="Send RAM review batch to Label Studio"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        params = SendReviewParams.from_mapping(ctx.params)
        settings = label_studio_settings(ctx)
        with settings.client() as ls:
            result = send_review_batch(ctx.target_view(), params, ls,
                                       document_root=params.document_root or settings.document_root,
                                       progress=progress_reporter(ctx, "Sending"))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        return result_output(ctx, _RESULT_LABELS, "Review batch sent")
