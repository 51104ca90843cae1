"""Operator: Compute RAM similarity (pooled embeddings + a Brain similarity index for the App)."""
from __future__ import annotations

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.models.engine_cache import get_tagger
from plugin.operators.inputs import (
    operator_config,
    add_model_options,
    add_new_field,
    add_target_view,
    progress_reporter,
    result_output,
    secrets_of,
)
from plugin.jobs.similarity import compute_ram_similarity
from plugin.params import ModelParams, SimilarityParams

__all__ = ["ComputeRamSimilarity"]

_RESULT_LABELS = {
    "embedded": "Samples embedded",
    "skipped": "Already embedded by this model (skipped)",
    "failed": "Samples that could not be read",
    "indexed": "Samples in the similarity index",
    "brain_key": "Brain key",
    "text_query_note": "Text queries",
}


class ComputeRamSimilarity(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return operator_config(
            "compute_ram_similarity", "Compute RAM similarity", "image_search",
            "Index RAM's image embeddings so the App can sort by similarity (also by tag name)",
            delegated_by_default=True,
        )

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        add_target_view(ctx, inputs, "Embed")
        add_new_field(ctx, inputs, "embeddings_field", label="Embeddings field", default=SimilarityParams.embeddings_field,
                      description="Receives RAM's pooled 512-d image embedding per sample")
        add_new_field(ctx, inputs, "brain_key", label="Brain key", default=SimilarityParams.brain_key,
                      description="Name of the similarity index (sklearn backend, cosine)")
        inputs.bool("text_queries", label="Text queries by tag name", default=True,
                    description="Lets the App search by a RAM tag name (its text embedding, same space); "
                                "registers ram-annotate's model-zoo source on this machine")
        inputs.bool("overwrite", label="Overwrite", default=False,
                    description="Replace a field or brain run that this operator did not write")
        add_model_options(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Compute RAM similarity"))

    def execute(self, ctx: foo.ExecutionContext) -> dict:
        params = SimilarityParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        result = compute_ram_similarity(ctx.target_view(), get_tagger(model), params, model=model,
                                        progress=progress_reporter(ctx, "Embedding"))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return result.to_dict()

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        return result_output(ctx, _RESULT_LABELS, "RAM similarity index ready")
