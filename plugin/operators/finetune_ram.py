"""Operator: Fine-tune RAM on reviewed labels, register the version, optionally re-tag with it."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.operators.inputs import (
    add_model_options,
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
        inputs.str("model_name", label="Model name", default=FinetuneJobParams.model_name,
                   description="Versions are registered under this name")
        inputs.str("registry_root", label="Model registry folder (optional)", required=False,
                   description="Default: <work dir>/finetune/models ($RAM_ANNOTATE_WORK_DIR or ~/.ram-annotate)")
        inputs.enum("mode", ["head", "full"], label="What to train", default="head", view=types.RadioGroup())
        inputs.int("epochs", label="Epochs", default=FinetuneJobParams.epochs)
        inputs.int("finetune_batch_size", label="Training batch size", default=FinetuneJobParams.batch_size)
        inputs.float("lr", label="Learning rate (optional)", required=False)
        inputs.int("seed", label="Seed", default=0)
        inputs.bool("promote", label="Make it the active version if it beats the current one", default=True)
        inputs.int("min_val_images", label="Promote only if validated on at least this many images",
                   default=FinetuneJobParams.min_val_images,
                   description="Fewer held-out images say nothing either way: the version is registered, not promoted")
        inputs.str("retag_field", label="Re-tag the view into this field (optional)", required=False,
                   description="Runs Tag with RAM with the new model")
        inputs.str("output_dir", label="Work folder (optional)", required=False)
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
