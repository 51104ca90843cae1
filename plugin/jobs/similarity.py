"""Compute RAM similarity: RAM's pooled image embeddings plus a FiftyOne Brain similarity index.

Embeddings are written chunk by chunk like tags (a rerun with the same model fills in only
the samples that lack one); then a Brain index (sklearn backend, cosine) is built over the
field, so the App's "sort by similarity" works. With text queries on, the index names the
model through the zoo entry `ram-annotate/ram-checkpoint` and its options, so the App, in
its own process, can turn a tag name into the tag's embedding in the same space.
"""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from typing import Any

import fiftyone.brain as fob
import fiftyone.core.collections as foc

from plugin.models.engine_cache import Tagger
from plugin.errors import PluginInputError, RunConflictError
from plugin.jobs import SampleJobResult, runs
from plugin.params import ModelParams, SimilarityParams
from ram_model.progress import ProgressFn

__all__ = ["SimilarityResult", "compute_ram_similarity", "prompt_model"]

# Options that decide the embeddings (not which tags fire): what the App needs to rebuild the model.
_EMBEDDING_OPTIONS = ("checkpoint", "swin_config", "head_config", "tag_list", "tag_list_zh", "thresholds",
                      "device", "precision", "no_exif_transpose", "trust_pickle", "text_encoder")


@dataclass
class SimilarityResult(SampleJobResult):
    embeddings_field: str
    brain_key: str
    model_version: str
    embedded: int = 0
    indexed: int = 0
    text_queries: bool = False
    text_query_note: str = ""


def prompt_model(model: ModelParams) -> tuple[str, dict[str, Any]]:
    """(zoo model name, kwargs) that rebuild this in-process model anywhere the zoo source is registered."""
    from plugin.models.fo_model import ZOO_CUSTOM_MODEL

    options = model.options.to_dict()
    kwargs = {name: options[name] for name in _EMBEDDING_OPTIONS if options.get(name) not in (None, False, "")}
    return ZOO_CUSTOM_MODEL, kwargs


def _prepare(collection: foc.SampleCollection, params: SimilarityParams, model_version: str) -> bool:
    """Conflict checks; True when samples embedded earlier by the same model may be kept."""
    dataset = collection._root_dataset
    previous = runs.read_run_settings(dataset, params.run_key)
    exists = dataset.has_sample_field(params.embeddings_field)
    if previous is None and exists and not params.overwrite:
        raise RunConflictError(f"Field {params.embeddings_field!r} exists and was not written by Compute RAM "
                               "similarity; choose another field or enable overwrite")
    if previous is not None and previous.get("model_version") != model_version and not params.overwrite:
        raise RunConflictError(
            f"Field {params.embeddings_field!r} holds embeddings of model {previous.get('model_version')!r}, not "
            f"{model_version!r}; choose another field or enable overwrite"
        )
    if dataset.has_brain_run(params.brain_key):
        ours = previous is not None and previous.get("brain_key") == params.brain_key
        if not ours and not params.overwrite:
            raise RunConflictError(f"Brain run {params.brain_key!r} exists and was not made by Compute RAM "
                                   "similarity; choose another brain key or enable overwrite")
        dataset.delete_brain_run(params.brain_key)
    keep = previous is not None and previous.get("model_version") == model_version and not params.overwrite
    if not keep and exists:
        dataset.delete_sample_field(params.embeddings_field)
    return keep


def compute_ram_similarity(collection: foc.SampleCollection, tagger: Tagger, params: SimilarityParams, *,
                           model: ModelParams | None = None,
                           progress: ProgressFn | None = None) -> SimilarityResult:
    """Embed every sample of `collection` (resuming), then (re)build the similarity index over them."""
    total = len(collection)
    if total == 0:
        raise PluginInputError("The target view has no samples; nothing to embed")
    dataset = collection._root_dataset
    keep = _prepare(collection, params, tagger.model_version)
    result = SimilarityResult(params.embeddings_field, params.brain_key, tagger.model_version, total=total)
    runs.record_run(dataset, params.run_key, {"model_version": tagger.model_version, **tagger.describe(),
                                              "brain_key": params.brain_key, "field": params.embeddings_field})

    pending = collection.exists(params.embeddings_field, False) if keep else collection
    ids, paths = pending.values(["id", "filepath"])
    result.skipped = total - len(ids)
    if progress is not None:
        progress(result.skipped, total)
    with closing(tagger.predict_iter(paths, with_embedding=True)) as stream:  # one stream across chunks
        for start in range(0, len(ids), params.chunk_size):
            chunk_ids = ids[start:start + params.chunk_size]
            predictions = list(islice(stream, len(chunk_ids)))
            vectors = {}
            for sample_id, prediction in zip(chunk_ids, predictions):
                if prediction.ok and prediction.embedding is not None:
                    vectors[sample_id] = prediction.embedding
                else:
                    result.record_failure(sample_id, prediction.source, prediction.error)
            if vectors:
                dataset.set_values(params.embeddings_field, vectors, key_field="id")
            result.embedded += len(vectors)
            if progress is not None:
                progress(result.skipped + start + len(chunk_ids), total)

    indexed = collection.exists(params.embeddings_field)
    if len(indexed) == 0:
        raise PluginInputError("No sample could be embedded; see the failures")
    name, kwargs = None, None
    if params.text_queries and model is not None and not model.server_url:
        from plugin.models.fo_model import ensure_zoo_source

        ensure_zoo_source()
        name, kwargs = prompt_model(model)
        result.text_queries = True
        result.text_query_note = ("Search by a RAM tag name (e.g. 'dog') or any text (e.g. 'a dog on a beach', "
                                  "through CLIP's text encoder) in the App's similarity search")
    elif params.text_queries:
        result.text_query_note = ("Text queries need the model in this process (the server does not send tag "
                                  "embeddings); image similarity works")
    fob.compute_similarity(indexed, embeddings=params.embeddings_field, brain_key=params.brain_key,
                           backend="sklearn", metric="cosine", model=name, model_kwargs=kwargs,
                           progress=False)
    result.indexed = len(indexed)
    return result
