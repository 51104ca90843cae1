"""Operator: Load RAM reviews from Label Studio into a field of their own."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.operators.inputs import add_new_field, add_target_view, operator_config, progress_reporter, show_result
from plugin.review_round.load_reviews import load_reviews
from plugin.operators.review_inputs import (
    add_label_studio_status,
    add_sent_label_field_choice,
    label_studio_settings,
    show_table,
)
from plugin.review_round.params import LoadReviewsParams

__all__ = ["LoadLabelStudioReviews"]

_RESULT_LABELS = {
    "output_field": "Field written",
    "tasks": "Tasks in the project",
    "reviewed": "Reviewed samples",
    "written": "Reviews written or updated",
    "unchanged": "Unchanged since the last load",
    "cleared": "Cleared (annotation deleted or skipped)",
    "unknown_samples": "Tasks of samples no longer in the dataset",
}


class LoadLabelStudioReviews(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return operator_config(
            "load_label_studio_reviews", "Load RAM reviews from Label Studio", "move_to_inbox",
            "Write the labels reviewers chose in Label Studio into a field, with reviewer and time",
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Load into")
        add_label_studio_status(ctx, inputs)
        label_field = add_sent_label_field_choice(ctx, inputs, "label_field")
        if label_field:
            add_new_field(ctx, inputs, "output", label="Output field", default=f"{label_field}_reviewed",
                          description="fo.Classifications with reviewer, reviewed_at and the Label Studio ids")
        inputs.bool("overwrite", label="Overwrite", default=False,
                    description="Replace an output field that Load reviews did not write")
        return types.Property(inputs, view=types.View(label="Load RAM reviews from Label Studio"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        params = LoadReviewsParams.from_mapping(ctx.params)
        with label_studio_settings(ctx).client() as ls:
            result = load_reviews(ctx.target_view(), params, ls, progress=progress_reporter(ctx, "Writing"))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        if not ctx.results:  # a failed run: let the App show its own error (see inputs.result_output)
            return None
        outputs = types.Object()
        show_result(outputs, ctx.results, _RESULT_LABELS)
        show_table(outputs, "classes", ctx.results.get("classes") or [],
                   ("label", "accepted", "added", "removed", "acceptance"),
                   "Per class: RAM's suggestion accepted / label added / suggestion removed")
        return types.Property(outputs, view=types.View(label="Reviews loaded"))
