"""Operator: Find RAM's box disagreements (likely missing / likely wrong boxes, via evaluate_detections)."""
from __future__ import annotations

from collections.abc import Callable

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.jobs.detect_disagreements import find_detection_disagreements
from plugin.params import DetectDisagreementParams
from plugin.operators.base import RamOperator
from plugin.operators.inputs import add_option_inputs, dropdown
from ram_model.option import declared_option, declared_options

__all__ = ["FindRamDetectionDisagreements"]


class FindRamDetectionDisagreements(RamOperator):
    name = "find_ram_detection_disagreements"
    label = "Find RAM's box disagreements"
    icon = "difference"
    description = "Confident RAM boxes nobody drew (likely missing) and boxes RAM does not match (likely wrong)"
    verb = "Compare"
    progress_label = "Comparing"
    result_title = "Box disagreements found"
    opens_saved_view = True
    result_labels = {
        "flagged_samples": "Samples flagged",
        "likely_missing": "Likely missing boxes",
        "likely_wrong": "Likely wrong boxes",
        "saved_view": "Saved view (ranked)",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        fields = sorted(ctx.dataset.get_field_schema(embedded_doc_type=fo.Detections))
        for name in ("pred_field", "gt_field"):
            spec = declared_option(DetectDisagreementParams, name)
            choices = dropdown(fields)
            inputs.enum(name, choices.values(), required=True, label=spec.title, view=choices,
                        default=spec.default if spec.default in fields else None)
        add_option_inputs(inputs, declared_options(DetectDisagreementParams))

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        return find_detection_disagreements(ctx.target_view(), DetectDisagreementParams.from_mapping(ctx.params),
                                            progress=progress)
