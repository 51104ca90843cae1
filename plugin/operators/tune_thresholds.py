"""Operator: Tune RAM's per-class thresholds on reviewed labels, optionally re-tag with them."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.operators.inputs import (
    add_model_options,
    add_option_inputs,
    add_target_view,
    operator_config,
    progress_reporter,
    secrets_of,
    show_result,
)
from plugin.review_round.tune_thresholds import tune_thresholds_on_reviews
from plugin.params import ModelParams
from plugin.operators.review_inputs import add_reviewed_source, show_table
from plugin.review_round.params import ThresholdJobParams
from ram_model.model.option import declared_options

__all__ = ["TuneRamThresholds"]

_RESULT_LABELS = {
    "thresholds": "Thresholds file (use as thresholds)",
    "images": "Reviewed images used",
    "failed": "Images that could not be read",
    "tuned": "Classes tuned",
    "shrunk": "Classes tuned, shrunk towards RAM's threshold",
    "why_none": "Why nothing was tuned",
    "kept": "Classes that kept RAM's threshold",
}


class TuneRamThresholds(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return operator_config(
            "tune_ram_thresholds", "Tune RAM thresholds on reviews", "tune",
            "Fit per-class thresholds to reviewed labels and compare them with RAM's",
            delegated_by_default=True,
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Tune on")
        add_reviewed_source(ctx, inputs)
        add_option_inputs(inputs, declared_options(ThresholdJobParams))
        add_model_options(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Tune RAM thresholds"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        params = ThresholdJobParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        result = tune_thresholds_on_reviews(ctx.target_view(), params, model,
                                            progress=progress_reporter(ctx, "Scoring"))
        if not ctx.delegated and params.retag_field:
            ctx.trigger("reload_dataset")
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        if not ctx.results:  # a failed run: let the App show its own error (see inputs.result_output)
            return None
        outputs = types.Object()
        show_table(outputs, "metrics", ctx.results.get("metrics") or [], ("metric", "base", "new", "change"),
                   "Reviewed labels: RAM's thresholds vs tuned")
        show_result(outputs, ctx.results, _RESULT_LABELS)
        show_table(outputs, "changes", ctx.results.get("changes") or [],
                   ("tag", "before", "after", "positives", "negatives", "source"), "Thresholds changed")
        return types.Property(outputs, view=types.View(label="Thresholds tuned"))
