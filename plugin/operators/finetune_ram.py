"""Operator: Fine-tune RAM on reviewed labels, register the version, optionally re-tag with it."""
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
from plugin.review_round.finetune import finetune_on_reviews
from plugin.params import ModelParams
from plugin.operators.review_inputs import add_reviewed_source, show_table
from plugin.review_round.params import FinetuneJobParams
from ram_model.finetune.config import TRAINING_OPTIONS
from ram_model.model.option import declared_options

__all__ = ["FinetuneRam"]

_RESULT_LABELS = {
    "model_uri": "New model (use as checkpoint)",
    "version": "Version",
    "promotion": "Promotion",
    "examples": "Training images",
    "run_dir": "Run folder",
}


class FinetuneRam(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return operator_config(
            "finetune_ram", "Fine-tune RAM on reviews", "model_training",
            "Fine-tune RAM on reviewed labels, register the new version and compare it with the base",
            delegated_by_default=True,
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Train on")
        add_reviewed_source(ctx, inputs)
        add_option_inputs(inputs, declared_options(FinetuneJobParams))
        add_option_inputs(inputs, TRAINING_OPTIONS, env=False)
        add_model_options(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Fine-tune RAM on reviews"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        params = FinetuneJobParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        result = finetune_on_reviews(ctx.target_view(), params, model, progress=progress_reporter(ctx, "Training"))
        if not ctx.delegated and params.retag_field:
            ctx.trigger("reload_dataset")
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        if not ctx.results:  # a failed run: let the App show its own error (see inputs.result_output)
            return None
        outputs = types.Object()
        show_table(outputs, "metrics", ctx.results.get("metrics") or [], ("metric", "base", "new", "change"),
                   "Validation: base vs new")
        show_result(outputs, ctx.results, _RESULT_LABELS)
        if not ctx.results.get("retag"):
            outputs.view("retag_hint", types.Notice(
                label=f"To re-tag with it, run Tag with RAM with checkpoint {ctx.results.get('model_uri')}"))
        return types.Property(outputs, view=types.View(label="Fine-tuning finished"))
