"""Operator: Where RAM sees a tag: the samples whose evidence holds it, with that tag's heatmap shown."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.fo_evidence import where_ram_sees
from plugin.operators.inputs import add_ram_field_choice, add_target_view

__all__ = ["WhereRamSees"]


class WhereRamSees(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="where_ram_sees",
            label="Where RAM sees a tag",
            description="Show the samples where RAM's evidence holds a tag, with that tag's box and heatmap",
            dynamic=True,
            icon="travel_explore",  # a Material icon name: the App's operator browser shows it
            allow_immediate_execution=True,
            allow_delegated_execution=True,  # delegated: the heatmaps are set, the view is not opened
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Search")
        field = add_ram_field_choice(ctx, inputs, "ram_field")
        evidence = f"{field}_evidence"
        tags = sorted(ctx.dataset.distinct(f"{evidence}.detections.label")) \
            if field and ctx.dataset.has_sample_field(evidence) else []
        choices = types.AutocompleteView()
        for tag in tags:
            choices.add_choice(tag, label=tag)
        inputs.enum("tag", choices.values(), required=True, label="Tag", view=choices,
                    description="A tag RAM's evidence maps hold (Tag with RAM with 'Evidence maps' on)")
        return types.Property(inputs, view=types.View(label="Where RAM sees a tag"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        field, tag = ctx.params.get("ram_field") or "ram", str(ctx.params.get("tag") or "")
        view = where_ram_sees(ctx.target_view(), tag, field)
        if not ctx.delegated:
            ctx.trigger("reload_dataset")  # the heatmap field changed
            ctx.ops.set_view(view=view)
        return {"samples": len(view), "tag": tag, "heatmap_field": f"{field}_heatmap"}
