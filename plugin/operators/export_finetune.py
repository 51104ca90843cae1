"""Operator: Export a (corrected) label field as RAM finetune JSON plus Label Studio tasks."""
from __future__ import annotations

from collections.abc import Callable

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.errors import PluginInputError
from plugin.jobs import JobResult
from plugin.jobs.export import export_finetune, export_vocabulary
from plugin.operators.base import RamOperator
from plugin.operators.inputs import (
    add_label_field_choice,
    add_option_input,
    add_option_inputs,
    add_vocabulary_options,
    mark_invalid,
    secrets_of,
)
from plugin.params import ExportParams, ModelParams, TagParams
from ram_model.option import declared_option, declared_options

__all__ = ["ExportRamFinetune"]


def _has_tag_run(dataset, ram_field: str | None) -> bool:
    try:
        return bool(ram_field) and dataset.has_run(TagParams(field=ram_field).run_key)
    except PluginInputError:
        return False


class ExportRamFinetune(RamOperator):
    name = "export_ram_finetune"
    label = "Export RAM finetuning data"
    icon = "file_download"
    description = "Write RAM's finetune JSON and Label Studio tasks from a label field"
    verb = "Export"
    progress_label = "Exporting"
    result_title = "Export written"
    result_labels = {
        "records": "Images exported",
        "skipped_unlabeled": "Skipped: label field unset",
        "skipped_missing_media": "Skipped: image file missing",
        "skipped_unreadable": "Skipped: image RAM could not read",
        "skipped_no_mapped_label": "Skipped: no label maps to a RAM tag",
        "finetune_json": "RAM finetune JSON",
        "tasks_json": "Label Studio tasks JSON",
        "unmapped_labels": "Labels with no RAM tag (left out)",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        add_label_field_choice(ctx, inputs, "label_field", label="Label field", required=True,
                               description=declared_option(ExportParams, "label_field").description)
        out = add_option_input(inputs, declared_option(ExportParams, "output_dir"), env=False)
        if ctx.params.get("copy_images") and not ctx.params.get("output_dir"):
            mark_invalid(out, "An output folder is required when copying images")
        add_option_inputs(inputs, declared_options(ExportParams))
        if not _has_tag_run(ctx.dataset, ctx.params.get("ram_field", "ram")):
            add_vocabulary_options(ctx, inputs)  # no tag run to take RAM's tag names from

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        params = ExportParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        vocab = export_vocabulary(ctx.dataset, params, model)
        return export_finetune(ctx.target_view(), vocab, params, progress=progress)

    def after_run(self, ctx: foo.ExecutionContext, result: JobResult) -> None:
        """An export writes files, not the dataset: nothing to reload."""
