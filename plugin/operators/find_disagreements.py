"""Operator: Find disagreements between a RAM field and a label field; opens the ranked view."""
from __future__ import annotations

from collections.abc import Callable

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.jobs.disagreements import find_sample_disagreements
from plugin.operators.base import RamOperator
from plugin.operators.inputs import add_label_field_choice, add_new_field, add_option_inputs, add_ram_field_choice
from plugin.params import DisagreementParams
from ram_model.option import declared_options

__all__ = ["FindRamDisagreements"]


class FindRamDisagreements(RamOperator):
    name = "find_ram_disagreements"
    label = "Find RAM disagreements"
    icon = "rule"
    description = "Rank samples where RAM and the existing labels disagree"
    verb = "Compare"
    progress_label = "Comparing"
    result_title = "Disagreements found"
    opens_saved_view = True
    result_labels = {
        "compared": "Samples compared",
        "flagged_samples": "Samples with at least one flag",
        "missing_tags": "Likely missing tags",
        "wrong_tags": "Likely wrong tags",
        "untagged": "Skipped: not tagged by RAM",
        "unlabeled": "Skipped: label field unset",
        "saved_view": "Saved view (sorted by disagreement)",
        "score_source": "RAM scores used",
        "unmapped_labels": "Labels with no RAM tag (never flagged)",
        "why_none": "Why nothing was flagged",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        ram_field = add_ram_field_choice(ctx, inputs, "ram_field")
        label_field = add_label_field_choice(
            ctx, inputs, "label_field", label="Label field", required=True,
            description="The labels to check: Classification(s), Detections or the sample tags",
            exclude=(ram_field,) if ram_field else (),
        )
        if ram_field and label_field:
            add_new_field(ctx, inputs, "output", label="Output prefix", default=f"{ram_field}_vs_{label_field}",
                          description="Writes <prefix>_missing, <prefix>_wrong and <prefix>_score")
        add_option_inputs(inputs, declared_options(DisagreementParams))

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        return find_sample_disagreements(ctx.target_view(), DisagreementParams.from_mapping(ctx.params),
                                         progress=progress)
