"""Operator: Find disagreements between a RAM field and a label field; opens the ranked view."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.operators.inputs import (
    operator_config,
    add_label_field_choice,
    add_new_field,
    add_ram_field_choice,
    add_target_view,
    progress_reporter,
    result_output,
)
from plugin.jobs.disagreements import find_sample_disagreements
from plugin.params import DisagreementParams

__all__ = ["FindRamDisagreements"]

_RESULT_LABELS = {
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


def open_saved_view(ctx: foo.ExecutionContext, name: str) -> None:
    """Show the saved view in the App, sent as its stages.

    The App's `set_view` looks a name up in the list of saved views it loaded with the
    dataset; a view saved during this run (or by the CLI since the App opened) is not in
    it, and the App fails with "Saved view ... does not exist". The stages always work.
    """
    ctx.ops.set_view(view=ctx.dataset.load_saved_view(name))


class FindRamDisagreements(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return operator_config(
            "find_ram_disagreements", "Find RAM disagreements", "rule",
            "Rank samples where RAM and the existing labels disagree",
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Compare")
        ram_field = add_ram_field_choice(ctx, inputs, "ram_field")
        label_field = add_label_field_choice(
            ctx, inputs, "label_field", label="Label field", required=True,
            description="The labels to check: Classification(s), Detections or the sample tags",
            exclude=(ram_field,) if ram_field else (),
        )
        if ram_field and label_field:
            add_new_field(ctx, inputs, "output", label="Output prefix", default=f"{ram_field}_vs_{label_field}",
                          description="Writes <prefix>_missing, <prefix>_wrong and <prefix>_score")
        inputs.str("synonyms", label="Synonym file (optional)", required=False,
                   description="JSON/YAML mapping of label -> RAM tag(s)")
        inputs.bool("overwrite", label="Overwrite", default=False,
                    description="Replace output fields that were not written by this operator")
        return types.Property(inputs, view=types.View(label="Find RAM disagreements"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        params = DisagreementParams.from_mapping(ctx.params)
        result = find_sample_disagreements(ctx.target_view(), params,
                                           progress=progress_reporter(ctx, "Comparing"))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
            open_saved_view(ctx, result.saved_view)
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        return result_output(ctx, _RESULT_LABELS, "Disagreements found")
