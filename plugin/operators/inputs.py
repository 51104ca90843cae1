"""Form pieces shared by the operators: target view, field pickers, model options, errors.

Validation happens here, in the form, so the App shows a problem next to the input that
causes it (and FiftyOne refuses to execute an invalid form) instead of failing later.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.errors import PluginInputError
from plugin.fo_convert import SUPPORTED_LABEL_TYPES
from plugin.params import check_field_name
from ram_model.inference.options import MODEL_OPTIONS
from ram_model.errors import ConfigError
from ram_model.option import OptionSpec, parse_option

__all__ = [
    "add_field_choice",
    "add_field_option",
    "dropdown",
    "add_option_input",
    "add_option_inputs",
    "add_label_field_choice",
    "add_model_options",
    "add_threshold_options",
    "add_vocabulary_options",
    "add_new_field",
    "add_ram_field_choice",
    "mark_invalid",
    "secrets_of",
    "show_result",
]

SECRET_KEYS = ("RAM_ANNOTATE_URL", "RAM_ANNOTATE_AUTH")


def mark_invalid(prop: types.Property, message: str) -> None:
    prop.invalid = True
    prop.error_message = message


def dropdown(values: Iterable[str]) -> types.DropdownView:
    """A dropdown whose choices read as their values."""
    choices = types.DropdownView()
    for value in values:
        choices.add_choice(value, label=value)
    return choices


def add_field_choice(ctx: foo.ExecutionContext, inputs: types.Object, name: str, fields: list[str], *, label: str,
                     description: str, none_message: str) -> str | None:
    """A required dropdown of existing fields, preset when there is only one; with none, the form
    says `none_message` next to it and cannot run. Returns the choice."""
    choices = dropdown(fields)
    prop = inputs.enum(name, choices.values(), required=True, label=label, view=choices,
                       default=fields[0] if len(fields) == 1 else None, description=description)
    if not fields:
        mark_invalid(prop, none_message)
    return ctx.params.get(name)


def _label_fields(ctx: foo.ExecutionContext) -> list[str]:
    schema = ctx.dataset.get_field_schema(embedded_doc_type=SUPPORTED_LABEL_TYPES)
    return sorted(schema)


def add_label_field_choice(ctx: foo.ExecutionContext, inputs: types.Object, name: str, *, label: str,
                           description: str, required: bool, exclude: tuple[str, ...] = ()) -> str | None:
    """Dropdown of Classification(s)/Detections fields plus the sample tags; returns the choice."""
    choices = types.DropdownView()
    choices.add_choice("tags", label="sample tags")
    for field in _label_fields(ctx):
        if field not in exclude:
            choices.add_choice(field, label=field)
    inputs.enum(name, choices.values(), required=required, label=label, description=description, view=choices)
    return ctx.params.get(name)


def add_ram_field_choice(ctx: foo.ExecutionContext, inputs: types.Object, name: str,
                         *, run_prefix: str = "ram_tag_") -> str | None:
    """Dropdown of fields written by Tag with RAM (they carry a run record)."""
    ram_fields = sorted(key[len(run_prefix):] for key in ctx.dataset.list_runs() if key.startswith(run_prefix))
    return add_field_choice(ctx, inputs, name, ram_fields, label="RAM field", description="A field written by Tag with RAM",
                            none_message="No field on this dataset was written by Tag with RAM; run it first")


def add_new_field(ctx: foo.ExecutionContext, inputs: types.Object, name: str, *, label: str,
                  default: str, description: str) -> tuple[str, types.Property]:
    value = ctx.params.get(name) or default
    prop = inputs.str(name, required=False, default=default, label=label, description=description)
    try:
        check_field_name(value, label)
    except PluginInputError as e:
        mark_invalid(prop, str(e))
    return value, prop


def add_field_option(ctx: foo.ExecutionContext, inputs: types.Object, spec: OptionSpec) -> tuple[str, types.Property]:
    """A declared option that names a new field: a text input checked as a field name as it is typed."""
    return add_new_field(ctx, inputs, spec.param, label=spec.title, default=spec.default,
                         description=spec.description)


def add_option_input(inputs: types.Object, spec: OptionSpec, *, default: Any = None,
                     env: bool = True) -> types.Property:
    """One form input for one declared option (`ram_model.option`): the field's type, label,
    help and choices as declared. The default shown is `default`, else (with `env`, for options the
    job also reads from the environment) the environment's value, else the declared one; a
    number left empty means "not given", so the job takes its default."""
    description = spec.description
    env_default = os.environ.get(spec.env) if env else None
    if default is None:
        default = env_default if env_default else spec.default
    if isinstance(default, str) and spec.kind in (int, float):
        try:
            default = parse_option(spec, default)
        except ConfigError:
            default = None  # a bad environment value is reported when the job parses it
    key, label = spec.param, spec.title
    if spec.kind is bool:
        return inputs.bool(key, label=label, default=bool(default), description=description)
    if spec.choices:
        choices = dropdown(spec.choices)
        return inputs.enum(key, choices.values(), label=label, default=default, description=description,
                           view=types.RadioGroup() if len(spec.choices) <= 2 else choices)
    if spec.kind is int:
        return inputs.int(key, label=label, required=spec.required, default=default, description=description)
    if spec.kind is float:
        return inputs.float(key, label=label, required=spec.required, default=default, description=description)
    text_default = None if spec.kind in (tuple, list) and not isinstance(default, str) else default
    return inputs.str(key, label=label, required=spec.required, default=text_default, description=description)


def add_option_inputs(inputs: types.Object, specs: Iterable[OptionSpec], *, env: bool = False) -> None:
    """The form inputs of a job's declared options that belong in a form (`env`: see add_option_input)."""
    for spec in specs:
        if spec.in_form:
            add_option_input(inputs, spec, env=env)


def add_model_options(ctx: foo.ExecutionContext, inputs: types.Object) -> None:
    """Checkpoint and files for the in-process engine; hidden when a shared server is configured."""
    if secrets_of(ctx).get("RAM_ANNOTATE_URL"):
        inputs.view("server_notice", types.Notice(
            label="The model runs on the ram-annotate server configured in RAM_ANNOTATE_URL"))
        return
    add_option_inputs(inputs, (spec for spec in MODEL_OPTIONS if spec.group == "model"), env=True)


VOCABULARY_OPTIONS = ("tag_list", "tag_list_zh")


def add_vocabulary_options(ctx: foo.ExecutionContext, inputs: types.Object) -> None:
    """The tag-list files, for jobs that need RAM's tag names but no model (Export without a tag run)."""
    if secrets_of(ctx).get("RAM_ANNOTATE_URL"):
        inputs.view("server_notice", types.Notice(
            label="RAM's tag names come from the ram-annotate server configured in RAM_ANNOTATE_URL"))
        return
    for spec in MODEL_OPTIONS:
        if spec.name in VOCABULARY_OPTIONS:
            add_option_input(inputs, spec, env=True)


def add_threshold_options(inputs: types.Object) -> None:
    """Which tags fire: the same options (and rule) as `ram-annotate tag` and the server."""
    add_option_inputs(inputs, (spec for spec in MODEL_OPTIONS if spec.group == "thresholds"), env=True)


def secrets_of(ctx: foo.ExecutionContext) -> dict[str, str | None]:
    return {key: ctx.secret(key) for key in SECRET_KEYS}


def show_result(outputs: types.Object, result: dict[str, Any], labels: dict[str, str]) -> None:
    """Read-only outputs for the numbers a job returns."""
    for key, label in labels.items():
        value = result.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            outputs.int(key, label=label)
        elif isinstance(value, float):
            outputs.float(key, label=label)
        elif isinstance(value, str):
            outputs.str(key, label=label)
        else:
            outputs.list(key, types.String() if all(isinstance(v, str) for v in value) else types.Object(),
                         label=label)
