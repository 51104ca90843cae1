"""Operator: Find RAM's box disagreements (likely missing / likely wrong boxes, via evaluate_detections)."""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.operators.inputs import add_target_view, progress_reporter, result_output
from plugin.jobs.detect_disagreements import DetectDisagreementParams, find_detection_disagreements
from plugin.operators.find_disagreements import open_saved_view

__all__ = ["FindRamDetectionDisagreements"]

_RESULT_LABELS = {
    "flagged_samples": "Samples flagged",
    "likely_missing": "Likely missing boxes",
    "likely_wrong": "Likely wrong boxes",
    "saved_view": "Saved view (ranked)",
}


def _detections_fields(ctx: foo.ExecutionContext) -> list[str]:
    schema = ctx.dataset.get_field_schema(embedded_doc_type=fo.Detections)
    return sorted(schema)


class FindRamDetectionDisagreements(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="find_ram_detection_disagreements",
            label="Find RAM's box disagreements",
            description="Confident RAM boxes nobody drew (likely missing) and boxes RAM does not match (likely wrong)",
            dynamic=True,
            icon="difference",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Compare")
        fields = _detections_fields(ctx)
        for name, label, default in (("pred_field", "RAM detections", DetectDisagreementParams.pred_field),
                                     ("gt_field", "Existing boxes", DetectDisagreementParams.gt_field)):
            choices = types.DropdownView()
            for f in fields:
                choices.add_choice(f, label=f)
            inputs.enum(name, choices.values(), required=True, label=label, view=choices,
                        default=default if default in fields else None)
        inputs.float("iou", label="Match IoU", default=DetectDisagreementParams.iou)
        inputs.float("min_score", label="Minimum confidence for 'likely missing'",
                     default=DetectDisagreementParams.min_score)
        inputs.bool("overwrite", label="Overwrite", default=False)
        return types.Property(inputs, view=types.View(label="Find RAM's box disagreements"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        p = ctx.params
        params = DetectDisagreementParams(
            pred_field=p.get("pred_field") or DetectDisagreementParams.pred_field,
            gt_field=p.get("gt_field") or DetectDisagreementParams.gt_field,
            iou=float(p.get("iou") or DetectDisagreementParams.iou),
            min_score=float(p.get("min_score") if p.get("min_score") is not None else DetectDisagreementParams.min_score),
            overwrite=bool(p.get("overwrite")))
        result = find_detection_disagreements(ctx.target_view(), params, progress=progress_reporter(ctx, "Comparing"))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
            open_saved_view(ctx, result.saved_view)
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        return result_output(ctx, _RESULT_LABELS, "Box disagreements found")
