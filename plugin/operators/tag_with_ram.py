"""Operator: Tag with RAM (writes a Classifications field; resumable; recorded as a run)."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.models.engine_cache import get_tagger
from plugin.operators.inputs import (
    operator_config,
    add_label_field_choice,
    add_model_options,
    add_new_field,
    add_threshold_options,
    add_target_view,
    mark_invalid,
    progress_reporter,
    secrets_of,
    result_output,
)
from plugin.jobs.tag import tag_samples
from plugin.params import ModelParams, TagParams

__all__ = ["TagWithRam"]

_RESULT_LABELS = {
    "tagged": "Samples tagged",
    "skipped": "Already tagged by this model (skipped)",
    "failed": "Samples that could not be read",
    "model_version": "Model version",
    "field": "Field",
}


class TagWithRam(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return operator_config(
            "tag_with_ram", "Tag with RAM", "sell",
            "Tag images with the Recognize Anything Model",
            delegated_by_default=True,
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Tag")
        field, field_prop = add_new_field(
            ctx, inputs, "field", label="Output field", default=TagParams.field,
            description="fo.Classifications field that receives RAM's tags with their confidences",
        )
        add_label_field_choice(
            ctx, inputs, "label_field", label="Label field (optional)", required=False,
            description="Also store RAM's score for each class of this field, for Find disagreements",
            exclude=(field,),
        )
        if ctx.params.get("label_field"):
            inputs.bool("all_ram_tags", label="Keep every RAM tag", default=False,
                        description="Off: only the RAM tags this field's labels map onto are computed and "
                                    "written (the same scores, faster). On: all of RAM's tags")
            inputs.bool("open_set_labels", label="Score labels that are not RAM tags", default=True,
                        description="Labels that map onto no RAM tag become open-set classes, scored through "
                                    "CLIP's text encoder (RAM_ANNOTATE_TEXT_ENCODER, default CLIP ViT-B/16; threshold 0.5)")
        add_threshold_options(inputs)
        inputs.str("synonyms", label="Synonym file (optional)", required=False,
                   description="JSON/YAML mapping of label -> RAM tag(s)")
        inputs.bool("chinese_names", label="Store Chinese tag names", default=False,
                    description="Adds name_zh to each tag (writing gets slower)")
        inputs.bool("evidence", label="Evidence maps", default=False,
                    description="Also write where in the image RAM sees each fired tag: a coarse box per tag "
                                "(<field>_evidence) and a heatmap (<field>_heatmap); in-process model only")
        inputs.bool("overwrite", label="Overwrite", default=False,
                    description="Replace the output field on every sample, even if other settings made it")
        add_model_options(ctx, inputs)
        inputs.str("ray", label="Run on a Ray cluster (optional)", required=False,
                   description="local (start one on this machine), auto (the one RAY_ADDRESS or `ray start` "
                               "names) or an address; empty: in this process. Needs the [ray] extra")
        if not field_prop.invalid and not ctx.params.get("overwrite") and ctx.dataset.has_sample_field(field) \
                and not ctx.dataset.has_run(TagParams(field=field).run_key):
            mark_invalid(field_prop, f"Field {field!r} exists and was not written by Tag with RAM; "
                                     "choose another name or enable overwrite")
        return types.Property(inputs, view=types.View(label="Tag with RAM"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        params = TagParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        progress = progress_reporter(ctx, "Tagging")
        if ctx.params.get("ray"):  # the model in a Ray actor pool; results still written here in bulk
            from plugin.ray_tagger import ray_tagger
            from ram_model.scale.run import RaySettings

            with ray_tagger(model, RaySettings(target=str(ctx.params["ray"]))) as tagger:
                result = tag_samples(ctx.target_view(), tagger, params, progress=progress)
        else:
            result = tag_samples(ctx.target_view(), get_tagger(model), params, progress=progress)
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        return result_output(ctx, _RESULT_LABELS, "RAM tagging finished")

