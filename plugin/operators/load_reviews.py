"""Operator: Load RAM reviews from Label Studio into a field of their own."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.operators.base import RamOperator
from plugin.operators.inputs import add_new_field, add_option_inputs, show_result
from plugin.operators.review_inputs import (
    add_label_studio_status,
    add_sent_label_field_choice,
    label_studio_settings,
    show_table,
)
from plugin.review_round.load_reviews import load_reviews
from plugin.review_round.params import LoadReviewsParams
from ram_model.option import declared_options

__all__ = ["LoadLabelStudioReviews"]


class LoadLabelStudioReviews(RamOperator):
    name = "load_label_studio_reviews"
    label = "Load RAM reviews from Label Studio"
    icon = "move_to_inbox"
    description = "Write the labels reviewers chose in Label Studio into a field, with reviewer and time"
    verb = "Load into"
    progress_label = "Writing"
    result_title = "Reviews loaded"
    result_labels = {
        "output_field": "Field written",
        "tasks": "Tasks in the project",
        "reviewed": "Reviewed samples",
        "written": "Reviews written or updated",
        "unchanged": "Unchanged since the last load",
        "cleared": "Cleared (annotation deleted or skipped)",
        "unknown_samples": "Tasks of samples no longer in the dataset",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        add_label_studio_status(ctx, inputs)
        label_field = add_sent_label_field_choice(ctx, inputs, "label_field")
        if label_field:
            add_new_field(ctx, inputs, "output", label="Output field", default=f"{label_field}_reviewed",
                          description="fo.Classifications with reviewer, reviewed_at and the Label Studio ids")
        add_option_inputs(inputs, declared_options(LoadReviewsParams))

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        params = LoadReviewsParams.from_mapping(ctx.params)
        with label_studio_settings(ctx).client() as ls:
            return load_reviews(ctx.target_view(), params, ls, progress=progress)

    def output(self, outputs: types.Object, results: dict[str, Any]) -> None:
        show_result(outputs, results, self.result_labels)
        show_table(outputs, "classes", results.get("classes") or [],
                   ("label", "accepted", "added", "removed", "acceptance"),
                   "Per class: RAM's suggestion accepted / label added / suggestion removed")
