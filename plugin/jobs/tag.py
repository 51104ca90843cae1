"""Tag with RAM: run the model over a view and write one `fo.Classifications` per sample.

Results are written chunk by chunk with bulk `set_values`, the label field last, so a run
killed halfway loses at most the chunk in flight; the label's `model_version` is the mark
a rerun uses to skip finished samples. The run record pins the model version, thresholds
and label mapping: a rerun with different ones refuses to mix them into the same field
unless asked to overwrite, which then clears the field everywhere first.
"""
from __future__ import annotations

import dataclasses
from contextlib import closing
from dataclasses import dataclass
from itertools import islice

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.dataset as fod
import numpy as np
from fiftyone import ViewField as F

from plugin.models.engine_cache import Tagger, computing_only
from plugin.errors import PluginInputError, RunConflictError
from plugin.fo_convert import distinct_labels, label_kind, tags_to_classifications
from plugin.fo_evidence import evidence_detections, evidence_heatmap
from plugin.jobs import SampleJobResult, runs
from plugin.params import TagParams
from ram_model import TagVocabulary, ThresholdPolicy
from ram_model.review import LabelMapping, build_label_mapping, load_synonyms
from ram_model.progress import ProgressFn

__all__ = ["TAG_RUN_SETTINGS", "TagResult", "fired_tags", "tag_samples", "write_evidence", "write_results"]

# Settings that must match for two runs to write into the same field.
TAG_RUN_SETTINGS = ("model_version", "thresholds_digest", "top_k", "label_field", "mapping_digest",
                    "computed_classes", "evidence")

@dataclass
class TagResult(SampleJobResult):
    field: str
    run_key: str
    model_version: str
    tagged: int = 0
    unmapped_labels: list[str] = dataclasses.field(default_factory=list)
    open_set_labels: list[str] = dataclasses.field(default_factory=list)  # scored through CLIP's text encoder
    open_set_note: str | None = None  # why unmapped labels could not become open-set classes


def _mapping_for(collection: foc.SampleCollection, params: TagParams, tagger: Tagger) -> LabelMapping | None:
    if params.label_field is None:
        return None
    label_kind(collection, params.label_field)  # a clear error for unsupported types, before any work
    synonyms = load_synonyms(params.synonyms) if params.synonyms else None
    return build_label_mapping(
        distinct_labels(collection, params.label_field),
        tagger.vocab.names,
        synonyms=synonyms,
        ram_names_zh=tagger.vocab.names_zh,
    )


def _computing(tagger: Tagger, params: TagParams, mapping: LabelMapping | None) -> Tagger:
    """What computes the run: only the RAM classes the label field maps onto, unless the
    user keeps every RAM tag (or there is no label field, or it maps onto most of them)."""
    if mapping is None or params.all_ram_tags:
        return tagger
    return computing_only(tagger, [i for indices in mapping.ram_indices for i in indices])


def _settings(params: TagParams, tagger: Tagger, thresholds: np.ndarray,
              mapping: LabelMapping | None, computing: Tagger) -> dict[str, object]:
    mapped = [label for label, idx in zip(mapping.labels, mapping.ram_indices) if idx] if mapping else []
    computed = getattr(computing, "computed_classes", None)
    return {
        # None: every RAM tag was computed (the field can hold any of them)
        "computed_classes": list(computed) if computed is not None else None,
        "model_version": tagger.model_version,
        **tagger.describe(),
        "threshold": params.policy.threshold,
        "tag_threshold": [list(pair) for pair in sorted((params.policy.per_tag or {}).items())],
        "top_k": params.policy.top_k,
        "thresholds_digest": runs.thresholds_digest(thresholds),
        "label_field": params.label_field,
        "chinese_names": params.chinese_names,
        "mapping_digest": mapping.digest if mapping else None,
        "field": params.field,
        "scores_field": params.scores_field if mapping else None,
        "score_labels": mapped,
        "evidence": True if params.evidence else None,  # None, not False: runs recorded before it still match
    }


def _prepare_field(collection: foc.SampleCollection, params: TagParams, settings: dict[str, object]) -> bool:
    """Check for conflicts and clear what must not mix; True when finished samples may be skipped.

    Overwriting results of the *same* settings re-tags the target samples and keeps the
    rest (they agree); results of other settings, or a field we did not write, are
    cleared on every sample, so the field never holds two kinds of tags.
    """
    dataset = collection._root_dataset
    previous = runs.read_run_settings(dataset, params.run_key)
    field_exists = dataset.has_sample_field(params.field)
    if previous is None and field_exists and not params.overwrite:
        raise RunConflictError(
            f"Field {params.field!r} already exists and was not written by Tag with RAM; "
            "choose another field name or enable overwrite to replace it"
        )
    changed = runs.differences(previous, settings, TAG_RUN_SETTINGS) if previous else []
    if changed and not params.overwrite:
        raise RunConflictError(
            f"Field {params.field!r} holds RAM tags made with other settings ({'; '.join(changed)}); "
            "choose another field name, or enable overwrite to clear it on every sample and tag again"
        )
    compatible = previous is not None and not changed
    if not compatible:
        for name in (params.field, params.scores_field, params.error_field, params.evidence_field,
                     params.heatmap_field):
            if dataset.has_sample_field(name):
                dataset.delete_sample_field(name)
    return compatible and not params.overwrite


def tag_samples(collection: foc.SampleCollection, tagger: Tagger, params: TagParams, *,
                progress: ProgressFn | None = None) -> TagResult:
    """Tag every sample of `collection` not yet tagged with this model version and these settings."""
    total = len(collection)
    if total == 0:
        raise PluginInputError("The target view has no samples; nothing to tag")
    dataset = collection._root_dataset
    policy = params.policy
    if params.evidence and not getattr(tagger, "supports_evidence", False):
        raise PluginInputError("Evidence maps are computed by the in-process model only (not a server or a Ray "
                               "cluster); clear the server URL (or --ray) or turn evidence maps off")
    mapping = _mapping_for(dataset, params, tagger)
    open_note = None
    if mapping is not None and mapping.unmapped and params.open_set_labels:
        from plugin.models.open_set import open_set_tagger

        ram = tagger.vocab.names if params.all_ram_tags else [
            tagger.vocab.names[i] for i in sorted({i for idx in mapping.ram_indices for i in idx})]
        tagger, open_note = open_set_tagger(tagger, ram, list(mapping.unmapped))
        if open_note is None:
            mapping = _mapping_for(dataset, params, tagger)
    thresholds = policy.resolve(tagger.vocab)
    computing = tagger if getattr(tagger, "open_set_classes", ()) else _computing(tagger, params, mapping)
    settings = _settings(params, tagger, thresholds, mapping, computing)
    resume = _prepare_field(collection, params, settings)
    runs.record_run(
        dataset,
        params.run_key,
        settings,
        results={"vocabulary": tagger.vocab.to_dict(), "thresholds": thresholds.tolist()},
    )

    result = TagResult(params.field, params.run_key, tagger.model_version, total=total,
                       unmapped_labels=list(mapping.unmapped) if mapping else [],
                       open_set_labels=list(getattr(tagger, "open_set_classes", ())), open_set_note=open_note)
    pending = collection.match(F(f"{params.field}.model_version") != tagger.model_version) if resume else collection
    ids, paths = pending.values(["id", "filepath"])
    result.skipped = total - len(ids)
    score_labels: list[str] = settings["score_labels"]  # type: ignore[assignment]
    columns = [mapping.labels.index(label) for label in score_labels] if mapping else []

    if progress is not None:
        progress(result.skipped, total)
    # one stream, so the decode look-ahead spans chunks; over the whole vocabulary, NaN for classes not computed
    request = _evidence_request(params, thresholds)
    with closing(computing.predict_iter(paths, evidence=request) if request else computing.predict_iter(paths)) \
            as stream:
        for start in range(0, len(ids), params.chunk_size):
            chunk_ids = ids[start:start + params.chunk_size]
            predictions = list(islice(stream, len(chunk_ids)))
            labels, scores, errors, evidence = {}, {}, {}, {}
            for sample_id, prediction in zip(chunk_ids, predictions):
                probs = prediction.probs
                if probs is None or not prediction.ok:
                    errors[sample_id] = prediction.error
                    result.record_failure(sample_id, prediction.source, prediction.error)
                    continue
                labels[sample_id] = fired_tags(probs, tagger.vocab, policy, thresholds,
                                               model_version=tagger.model_version, chinese=params.chinese_names)
                if request is not None:
                    evidence[sample_id] = prediction.evidence or []
                if mapping is not None:
                    projected = mapping.project_probs(probs)
                    scores[sample_id] = [round(float(projected[c]), 5) for c in columns]
            write_evidence(dataset, params, evidence)
            write_results(dataset, params, labels, scores, errors)
            result.tagged += len(labels)
            if progress is not None:
                progress(result.skipped + start + len(chunk_ids), total)
    return result


def fired_tags(probs: np.ndarray, vocab: TagVocabulary, policy: ThresholdPolicy, thresholds: np.ndarray, *,
               model_version: str, chinese: bool = False) -> fo.Classifications:
    """One image's fired tags (best first) as the label the job writes."""
    fired = policy.fired(probs, thresholds)
    return tags_to_classifications([vocab.names[i] for i in fired], [float(probs[i]) for i in fired],
                                   model_version=model_version,
                                   names_zh=[vocab.names_zh[i] for i in fired] if chinese else None)


def _evidence_request(params: TagParams, thresholds: np.ndarray):
    """Maps for exactly the tags the label lists (the policy's fired tags), or None."""
    if not params.evidence:
        return None
    from ram_model.evidence import EvidenceRequest

    return EvidenceRequest.for_fired(params.policy, thresholds)


def write_evidence(dataset: fod.Dataset, params: TagParams, evidence: dict) -> None:
    """Boxes (Detections) and the best tag's heatmap; before the label field, which marks a sample done."""
    if not evidence:
        return
    dataset.set_values(params.evidence_field, {i: evidence_detections(e) for i, e in evidence.items()},
                       key_field="id")
    dataset.set_values(params.heatmap_field, {i: evidence_heatmap(e[0].map) if e else None
                                              for i, e in evidence.items()}, key_field="id")


def write_results(dataset: fod.Dataset, params: TagParams, labels: dict, scores: dict, errors: dict) -> None:
    """Bulk-write one chunk; the label field goes last because it marks a sample as done."""
    if scores:
        dataset.set_values(params.scores_field, scores, key_field="id")
    if errors or dataset.has_sample_field(params.error_field):
        cleared = {sample_id: None for sample_id in labels}
        dataset.set_values(params.error_field, {**cleared, **errors}, key_field="id")
    if labels:
        dataset.set_values(params.field, labels, key_field="id")
