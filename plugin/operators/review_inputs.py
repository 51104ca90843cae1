"""Form and result pieces shared by the review-round operators (send, load, fine-tune, tune thresholds)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.errors import PluginInputError
from plugin.operators.inputs import add_field_choice, dropdown, mark_invalid
from plugin.review_round.params import LS_SECRET_KEYS, LabelStudioSettings

__all__ = [
    "add_label_studio_status",
    "add_reviewed_source",
    "add_sent_label_field_choice",
    "label_studio_settings",
    "show_table",
]


def label_studio_settings(ctx: foo.ExecutionContext) -> LabelStudioSettings:
    """Label Studio URL and key from the plugin secrets (FiftyOne falls back to environment variables)."""
    return LabelStudioSettings.from_secrets({key: ctx.secret(key) for key in LS_SECRET_KEYS})


def add_label_studio_status(ctx: foo.ExecutionContext, inputs: types.Object) -> bool:
    """Say in the form where tasks go, or which secret is missing (then the form cannot run)."""
    try:
        settings = label_studio_settings(ctx)
    except PluginInputError as e:
        prop = inputs.str("label_studio", label="Label Studio", required=True, view=types.Error(label=str(e)))
        mark_invalid(prop, str(e))
        return False
    inputs.view("label_studio_notice", types.Notice(label=f"Label Studio: {settings.url}"))
    return True


def add_sent_label_field_choice(ctx: foo.ExecutionContext, inputs: types.Object, name: str) -> str | None:
    """Dropdown of the label fields that have a Label Studio project (a batch was sent)."""
    prefix = "ram_ls_"
    fields = sorted({key[len(prefix):] for key in ctx.dataset.list_runs()
                     if key.startswith(prefix) and not _is_round_key(key[len(prefix):])})
    return add_field_choice(ctx, inputs, name, fields, label="Label field",
                            description="The field whose review batches were sent to Label Studio",
                            none_message="No review batch was sent from this dataset yet; run Send review batch first")


def _is_round_key(rest: str) -> bool:
    head, _, number = rest.rpartition("_r")
    return bool(head) and number.isdigit()


def add_reviewed_source(ctx: foo.ExecutionContext, inputs: types.Object) -> None:
    """Where reviewed labels come from: a Classifications field, or a finetune export file."""
    schema = ctx.dataset.get_field_schema(embedded_doc_type=types_classifications())
    fields = sorted(schema)
    reviewed = [f for f in fields if f.endswith("_reviewed")]
    choices = dropdown(fields)
    inputs.enum("reviewed_field", choices.values(), required=False, label="Reviewed field",
                default=reviewed[0] if len(reviewed) == 1 else None,
                description="Labels loaded from Label Studio (or any Classifications field)", view=choices)
    data = inputs.str("data", required=False, label="...or a finetune export file",
                      description="ram_finetune.json written by Export RAM finetuning data")
    inputs.str("image_root", required=False, label="Image folder of the export (optional)")
    if bool(ctx.params.get("reviewed_field")) == bool(ctx.params.get("data")):
        mark_invalid(data, "Choose a reviewed field or give an export file (one of the two)")


def types_classifications() -> tuple[type, ...]:
    import fiftyone as fo

    return (fo.Classifications, fo.Classification)


def show_table(outputs: types.Object, key: str, rows: Sequence[dict[str, Any]], columns: Sequence[str],
               label: str) -> None:
    """A read-only table of result rows (per-class counts, base vs new metrics)."""
    if not rows:
        return
    table = types.TableView()
    for column in columns:
        table.add_column(column, label=column.replace("_", " "))
    outputs.list(key, types.Object(), label=label, view=table)
