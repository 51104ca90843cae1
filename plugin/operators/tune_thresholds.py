"""Operator: Tune RAM's per-class thresholds on reviewed labels, optionally re-tag with them."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.operators.finetune_ram import ReviewRoundOperator
from plugin.operators.inputs import add_model_options, add_option_inputs, secrets_of
from plugin.operators.review_inputs import add_reviewed_source, show_table
from plugin.params import ModelParams
from plugin.review_round.params import ThresholdJobParams
from plugin.review_round.tune_thresholds import tune_thresholds_on_reviews
from ram_model.option import declared_options
from ram_model.review import TuningOptions

__all__ = ["TuneRamThresholds"]


class TuneRamThresholds(ReviewRoundOperator):
    name = "tune_ram_thresholds"
    label = "Tune RAM thresholds on reviews"
    icon = "tune"
    description = "Fit per-class thresholds to reviewed labels and compare them with RAM's"
    verb = "Tune on"
    form_title = "Tune RAM thresholds"
    progress_label = "Scoring"
    result_title = "Thresholds tuned"
    metrics_title = "Reviewed labels: RAM's thresholds vs tuned"
    result_labels = {
        "thresholds": "Thresholds file (use as thresholds)",
        "images": "Reviewed images used",
        "failed": "Images that could not be read",
        "tuned": "Classes tuned",
        "shrunk": "Classes tuned, shrunk towards RAM's threshold",
        "why_none": "Why nothing was tuned",
        "kept": "Classes that kept RAM's threshold",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        add_reviewed_source(ctx, inputs)
        add_option_inputs(inputs, declared_options(ThresholdJobParams))
        add_option_inputs(inputs, declared_options(TuningOptions))
        add_model_options(ctx, inputs)

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        params = ThresholdJobParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        return tune_thresholds_on_reviews(ctx.target_view(), params, model, progress=progress)

    def output(self, outputs: types.Object, results: dict[str, Any]) -> None:
        super().output(outputs, results)
        show_table(outputs, "changes", results.get("changes") or [],
                   ("tag", "before", "after", "positives", "negatives", "source"), "Thresholds changed")
