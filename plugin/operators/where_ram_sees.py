"""Operator: Where RAM sees a tag: the samples whose evidence holds it, with that tag's heatmap shown."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.fo_evidence import evidence_view, where_ram_sees
from plugin.operators.base import RamOperator
from plugin.operators.inputs import add_ram_field_choice

__all__ = ["WhereRamSees"]


class WhereRamSees(RamOperator):
    name = "where_ram_sees"
    label = "Where RAM sees a tag"
    icon = "travel_explore"
    description = "Show the samples where RAM's evidence holds a tag, with that tag's box and heatmap"
    verb = "Search"  # delegated: the heatmaps are set, the view is not opened
    result_title = "Samples found"
    result_labels = {"samples": "Samples", "tag": "Tag", "heatmap_field": "Heatmap field"}

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        field = add_ram_field_choice(ctx, inputs, "ram_field")
        evidence = f"{field}_evidence"
        tags = sorted(ctx.dataset.distinct(f"{evidence}.detections.label")) \
            if field and ctx.dataset.has_sample_field(evidence) else []
        choices = types.AutocompleteView()
        for tag in tags:
            choices.add_choice(tag, label=tag)
        inputs.enum("tag", choices.values(), required=True, label="Tag", view=choices,
                    description="A tag RAM's evidence maps hold (Tag with RAM with 'Evidence maps' on)")

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> dict[str, Any]:
        field, tag = ctx.params.get("ram_field") or "ram", str(ctx.params.get("tag") or "")
        view = where_ram_sees(ctx.target_view(), tag, field)
        return {"samples": len(view), "tag": tag, "heatmap_field": f"{field}_heatmap"}

    def after_run(self, ctx: foo.ExecutionContext, result: Any) -> None:
        super().after_run(ctx, result)  # the heatmap field changed
        field = ctx.params.get("ram_field") or "ram"
        ctx.ops.set_view(view=evidence_view(ctx.target_view(), result["tag"], field))
