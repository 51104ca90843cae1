"""Operator: Fine-tune RAM on reviewed labels, register the version, optionally re-tag with it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.operators.base import RamOperator
from plugin.operators.inputs import add_model_options, add_option_inputs, secrets_of, show_result
from plugin.operators.review_inputs import add_reviewed_source, show_table
from plugin.params import ModelParams
from plugin.review_round.finetune import finetune_on_reviews
from plugin.review_round.params import FinetuneJobParams
from ram_model.finetune.config import TRAINING_OPTIONS
from ram_model.option import declared_options

__all__ = ["FinetuneRam", "ReviewRoundOperator"]


class ReviewRoundOperator(RamOperator):
    """Fine-tuning and threshold tuning: reviewed labels in, a model or thresholds out, optionally re-tagged."""

    delegated_by_default = True
    metrics_title = "Validation: base vs new"  # the heading of the base-vs-new metrics table

    def after_run(self, ctx: foo.ExecutionContext, result: Any) -> None:
        if ctx.params.get("retag_field"):  # only a re-tag changed the dataset
            super().after_run(ctx, result)

    def output(self, outputs: types.Object, results: dict[str, Any]) -> None:
        show_table(outputs, "metrics", results.get("metrics") or [], ("metric", "base", "new", "change"),
                   self.metrics_title)
        show_result(outputs, results, self.result_labels)


class FinetuneRam(ReviewRoundOperator):
    name = "finetune_ram"
    label = "Fine-tune RAM on reviews"
    icon = "model_training"
    description = "Fine-tune RAM on reviewed labels, register the new version and compare it with the base"
    verb = "Train on"
    progress_label = "Training"
    result_title = "Fine-tuning finished"
    result_labels = {
        "model_uri": "New model (use as checkpoint)",
        "version": "Version",
        "promotion": "Promotion",
        "examples": "Training images",
        "run_dir": "Run folder",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        add_reviewed_source(ctx, inputs)
        add_option_inputs(inputs, declared_options(FinetuneJobParams))
        add_option_inputs(inputs, TRAINING_OPTIONS)
        add_model_options(ctx, inputs)

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        params = FinetuneJobParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        return finetune_on_reviews(ctx.target_view(), params, model, progress=progress)

    def output(self, outputs: types.Object, results: dict[str, Any]) -> None:
        super().output(outputs, results)
        if not results.get("retag"):
            outputs.view("retag_hint", types.Notice(
                label=f"To re-tag with it, run Tag with RAM with checkpoint {results.get('model_uri')}"))
