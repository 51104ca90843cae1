"""Operator: Compute RAM similarity (pooled embeddings + a Brain similarity index for the App)."""
from __future__ import annotations

from collections.abc import Callable

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.jobs.similarity import compute_ram_similarity
from plugin.models.engine_cache import get_tagger
from plugin.operators.base import RamOperator
from plugin.operators.inputs import add_field_option, add_model_options, add_option_inputs, secrets_of
from plugin.params import ModelParams, SimilarityParams
from ram_model.option import declared_option, declared_options

__all__ = ["ComputeRamSimilarity"]


class ComputeRamSimilarity(RamOperator):
    name = "compute_ram_similarity"
    label = "Compute RAM similarity"
    icon = "image_search"
    description = "Index RAM's image embeddings so the App can sort by similarity (also by tag name)"
    delegated_by_default = True
    verb = "Embed"
    progress_label = "Embedding"
    result_title = "RAM similarity index ready"
    result_labels = {
        "embedded": "Samples embedded",
        "skipped": "Already embedded by this model (skipped)",
        "failed": "Samples that could not be read",
        "indexed": "Samples in the similarity index",
        "brain_key": "Brain key",
        "text_query_note": "Text queries",
    }

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        for name in ("embeddings_field", "brain_key"):
            add_field_option(ctx, inputs, declared_option(SimilarityParams, name))
        add_option_inputs(inputs, declared_options(SimilarityParams))
        add_model_options(ctx, inputs)

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult:
        params = SimilarityParams.from_mapping(ctx.params)
        model = ModelParams.from_mapping(ctx.params, secrets=secrets_of(ctx))
        return compute_ram_similarity(ctx.target_view(), get_tagger(model), params, model=model, progress=progress)
