"""Operator: Detect RAM's tags (boxes, optionally SAM masks, into an fo.Detections field; resumable, delegated)."""
from __future__ import annotations

from collections.abc import Callable

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.jobs.detect import detect_samples, get_labeler
from plugin.models.engine_cache import engine_config
from plugin.operators.base import RamOperator
from plugin.operators.inputs import (
    add_field_option,
    add_label_field_choice,
    add_model_options,
    add_option_inputs,
    add_threshold_options,
    secrets_of,
)
from plugin.params import DetectParams, ModelParams
from ram_model.option import declared_option, declared_options

__all__ = ["DetectWithRam"]


class DetectWithRam(RamOperator):
    name = "detect_with_ram"
    label = "Detect RAM's tags"
    icon = "crop_free"
    description = "Boxes (and SAM masks) for each image's RAM tags, with Grounding DINO or OWLv2"
    delegated_by_default = True
    verb = "Detect"
    progress_label = "Detecting"
    result_title = "Detection finished"
    result_labels = {
        "detected": "Samples detected",
        "skipped": "Already detected by these models (skipped)",
        "failed": "Samples that could not be read",
        "boxes": "Boxes written",
        "model_version": "Model version",
        "field": "Field",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        add_field_option(ctx, inputs, declared_option(DetectParams, "field"))
        add_option_inputs(inputs, declared_options(DetectParams))
        spec = declared_option(DetectParams, "label_field")
        add_label_field_choice(ctx, inputs, "label_field", label="Label field (optional)", required=False,
                               description=spec.description)
        add_threshold_options(inputs)
        add_model_options(ctx, inputs)

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        params = DetectParams.from_mapping(ctx.params)
        labeler = get_labeler(engine_config(model), params)
        return detect_samples(ctx.target_view(), labeler, params, progress=progress)
