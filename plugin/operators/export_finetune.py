"""Operator: Export a (corrected) label field as RAM finetune JSON plus Label Studio tasks."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.operators.inputs import (
    operator_config,
    add_label_field_choice,
    add_target_view,
    add_vocabulary_options,
    mark_invalid,
    progress_reporter,
    secrets_of,
    result_output,
)
from plugin.errors import PluginInputError
from plugin.jobs.export import export_finetune, export_vocabulary
from plugin.params import ExportParams, ModelParams, TagParams

__all__ = ["ExportRamFinetune"]

_RESULT_LABELS = {
    "records": "Images exported",
    "skipped_unlabeled": "Skipped: label field unset",
    "skipped_missing_media": "Skipped: image file missing",
    "skipped_unreadable": "Skipped: image RAM could not read",
    "skipped_no_mapped_label": "Skipped: no label maps to a RAM tag",
    "finetune_json": "RAM finetune JSON",
    "tasks_json": "Label Studio tasks JSON",
    "unmapped_labels": "Labels with no RAM tag (left out)",
}


def _has_tag_run(dataset, ram_field: str | None) -> bool:
    try:
        return bool(ram_field) and dataset.has_run(TagParams(field=ram_field).run_key)
    except PluginInputError:
        return False


class ExportRamFinetune(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return operator_config(
            "export_ram_finetune", "Export RAM finetuning data", "file_download",
            "Write RAM's finetune JSON and Label Studio tasks from a label field",
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Export")
        add_label_field_choice(ctx, inputs, "label_field", label="Label field", required=True,
                               description="The corrected labels to export")
        out = inputs.str("output_dir", label="Output folder", required=False,
                         description="Receives ram_finetune.json, label_studio_tasks.json (and images/); "
                                     "empty: a folder of its own under the work folder (exports/), never the photo folder")
        if ctx.params.get("copy_images") and not ctx.params.get("output_dir"):
            mark_invalid(out, "An output folder is required when copying images")
        inputs.str("ram_field", label="RAM field for Label Studio predictions", required=False,
                   default="ram", description="Empty: tasks without predictions. Its tag run also supplies "
                                              "RAM's vocabulary and the images it could not read (left out)")
        inputs.bool("copy_images", label="Copy images", default=False,
                    description="Copy images into <output>/images instead of pointing at them")
        inputs.enum("on_unmapped", ["skip", "fail"], default="skip", label="Labels with no RAM tag",
                    view=types.RadioGroup())
        inputs.str("synonyms", label="Synonym file (optional)", required=False)
        inputs.str("ls_document_root", label="Label Studio local-files root (optional)", required=False,
                   description="Task image paths are written relative to it; default: the output folder "
                               "when copying, else the images' common folder")
        inputs.bool("overwrite", label="Overwrite existing export files", default=False)
        if not _has_tag_run(ctx.dataset, ctx.params.get("ram_field", "ram")):
            add_vocabulary_options(ctx, inputs)  # no tag run to take RAM's tag names from
        return types.Property(inputs, view=types.View(label="Export RAM finetuning data"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        params = ExportParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        vocab = export_vocabulary(ctx.dataset, params, model)
        result = export_finetune(ctx.target_view(), vocab, params, progress=progress_reporter(ctx, "Exporting"))
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        return result_output(ctx, _RESULT_LABELS, "Export written")
