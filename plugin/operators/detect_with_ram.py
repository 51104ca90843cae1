"""Operator: Detect RAM's tags (boxes, optionally SAM masks, into an fo.Detections field; resumable, delegated)."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.models.engine_cache import engine_config
from plugin.operators.inputs import (
    add_label_field_choice,
    add_model_options,
    add_new_field,
    add_target_view,
    add_threshold_options,
    progress_reporter,
    result_output,
    secrets_of,
)
from plugin.jobs.detect import DetectParams, detect_samples, get_labeler
from plugin.params import ModelParams

__all__ = ["DetectWithRam"]

_RESULT_LABELS = {
    "detected": "Samples detected",
    "skipped": "Already detected by these models (skipped)",
    "failed": "Samples that could not be read",
    "boxes": "Boxes written",
    "model_version": "Model version",
    "field": "Field",
}


def _float(value) -> float | None:
    return None if value in (None, "") else float(value)


class DetectWithRam(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="detect_with_ram",
            label="Detect RAM's tags",
            description="Boxes (and SAM masks) for each image's RAM tags, with Grounding DINO or OWLv2",
            dynamic=True,
            icon="crop_free",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Detect")
        add_new_field(ctx, inputs, "field", label="Output field", default=DetectParams.field,
                      description="fo.Detections field that receives the boxes (with masks when segmenting)")
        inputs.str("detector", label="Detector", default=DetectParams.detector, required=True,
                   description="grounding-dino-tiny, grounding-dino-base, owlv2, a Hugging Face repo id or folder "
                               "(from the local cache), or random:tiny (random weights, for trying)")
        inputs.str("segmenter", label="Segmenter (optional)", required=False,
                   description="sam, sam-large, a repo id or folder, or random:tiny: adds instance masks")
        inputs.str("box_threshold", label="Box threshold (optional)", required=False,
                   description="Grounding DINO 0.25, OWLv2 0.1 by default")
        add_label_field_choice(ctx, inputs, "label_field", label="Label field (optional)", required=False,
                               description="Prompt only RAM tags that map onto this field's classes, "
                                           "and name boxes by them")
        add_threshold_options(inputs)
        inputs.bool("overwrite", label="Overwrite", default=False,
                    description="Replace detections made by other models or settings")
        add_model_options(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Detect RAM's tags"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        p = ctx.params
        model = ModelParams.from_mapping(p, secrets=secrets_of(ctx))
        params = DetectParams(field=p.get("field") or DetectParams.field, detector=p.get("detector") or DetectParams.detector,
                              segmenter=p.get("segmenter") or None, box_threshold=_float(p.get("box_threshold")),
                              label_field=p.get("label_field") or None, policy=model.options.threshold_policy(),
                              overwrite=bool(p.get("overwrite")))
        labeler = get_labeler(engine_config(model), params)
        result = detect_samples(ctx.target_view(), labeler, params, progress=progress_reporter(ctx, "Detecting"))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        return result_output(ctx, _RESULT_LABELS, "Detection finished")
