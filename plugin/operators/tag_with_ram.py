"""Operator: Tag with RAM (writes a Classifications field; resumable; recorded as a run)."""
from __future__ import annotations

from collections.abc import Callable

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.jobs.tag import tag_samples
from plugin.models.engine_cache import get_tagger
from plugin.operators.base import RamOperator
from plugin.operators.inputs import (
    add_label_field_choice,
    add_field_option,
    add_model_options,
    add_option_input,
    add_option_inputs,
    add_threshold_options,
    mark_invalid,
    secrets_of,
)
from plugin.params import ModelParams, TagParams
from ram_model.option import declared_options

__all__ = ["TagWithRam"]

_OPTIONS = {spec.name: spec for spec in declared_options(TagParams)}


class TagWithRam(RamOperator):
    name = "tag_with_ram"
    label = "Tag with RAM"
    icon = "sell"
    description = "Tag images with the Recognize Anything Model"
    delegated_by_default = True
    verb = "Tag"
    progress_label = "Tagging"
    result_title = "RAM tagging finished"
    result_labels = {
        "tagged": "Samples tagged",
        "skipped": "Already tagged by this model (skipped)",
        "failed": "Samples that could not be read",
        "model_version": "Model version",
        "field": "Field",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        field, field_prop = add_field_option(ctx, inputs, _OPTIONS["field"])
        add_label_field_choice(
            ctx, inputs, "label_field", label="Label field (optional)", required=False,
            description="Also store RAM's score for each class of this field, for Find disagreements",
            exclude=(field,),
        )
        if ctx.params.get("label_field"):
            add_option_input(inputs, _OPTIONS["all_ram_tags"], env=False)
            add_option_input(inputs, _OPTIONS["open_set_labels"], env=False)
        add_threshold_options(inputs)
        add_option_inputs(inputs, _OPTIONS.values())
        add_model_options(ctx, inputs)
        inputs.str("ray", label="Run on a Ray cluster (optional)", required=False,
                   description="local (start one on this machine), auto (the one RAY_ADDRESS or `ray start` "
                               "names) or an address; empty: in this process. Needs the [ray] extra")
        if not field_prop.invalid and not ctx.params.get("overwrite") and ctx.dataset.has_sample_field(field) \
                and not ctx.dataset.has_run(TagParams(field=field).run_key):
            mark_invalid(field_prop, f"Field {field!r} exists and was not written by Tag with RAM; "
                                     "choose another name or enable overwrite")

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        params = TagParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        if ctx.params.get("ray"):  # the model in a Ray actor pool; results still written here in bulk
            from plugin.ray_tagger import ray_tagger
            from ram_model.scale.run import RaySettings

            with ray_tagger(model, RaySettings(target=str(ctx.params["ray"]))) as tagger:
                return tag_samples(ctx.target_view(), tagger, params, progress=progress)
        return tag_samples(ctx.target_view(), get_tagger(model), params, progress=progress)
