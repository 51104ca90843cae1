"""Find disagreements: compare a RAM field with a label field and rank samples for review.

The scoring is the review core's (`ram_model.review.find_disagreements`); this module only
gathers its inputs from FiftyOne and writes its outputs back. Probabilities come from the
per-label scores the tag job stored when it was given this label field; without them the
stored tag confidences stand in (tags below their threshold then count as probability 0,
which makes "doubtful" flags coarser: the result says which source was used).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import fiftyone.core.collections as foc
import numpy as np
from fiftyone import ViewField as F

from plugin.errors import PluginInputError, RunConflictError
from plugin.fo_convert import (
    distinct_labels,
    issues_to_classifications,
    present_labels,
    tag_confidences,
)
from plugin.jobs import JobResult, runs
from plugin.params import DisagreementParams
from ram_model.progress import ProgressFn
from ram_model.weights.versions import is_random_version
from ram_model.review import (
    LabelMapping,
    build_label_mapping,
    find_disagreements,
    load_synonyms,
)

__all__ = ["DisagreementResult", "find_sample_disagreements", "label_probabilities"]


@dataclass
class DisagreementResult(JobResult):
    saved_view: str
    score_field: str
    missing_field: str
    wrong_field: str
    score_source: str
    samples: int = 0
    compared: int = 0
    untagged: int = 0
    unlabeled: int = 0
    flagged_samples: int = 0
    missing_tags: int = 0
    wrong_tags: int = 0
    unmapped_labels: list[str] = field(default_factory=list)
    classes: list[dict[str, object]] = field(default_factory=list)
    why_none: str | None = None  # when nothing was flagged, why


def label_probabilities(view: foc.SampleCollection, params: DisagreementParams, mapping: LabelMapping,
                   settings: dict, vocab_names: list[str]) -> tuple[np.ndarray, str]:
    """(N, L) probabilities over `mapping.labels` for the samples of `view`."""
    n, columns = len(view), len(mapping.labels)
    if settings.get("label_field") == params.label_field and settings.get("mapping_digest") == mapping.digest:
        stored = view.values(settings["scores_field"])
        probs = np.full((n, columns), np.nan)
        cols = [mapping.labels.index(label) for label in settings["score_labels"]]
        for row, values in enumerate(stored):
            if values is not None:
                probs[row, cols] = values
        return probs, "stored_scores"
    index = {name: i for i, name in enumerate(vocab_names)}
    probs = np.full((n, columns), np.nan)
    for row, confidences in enumerate(tag_confidences(view, params.ram_field)):
        dense = np.zeros(len(vocab_names))
        for name, confidence in (confidences or {}).items():
            if name in index:
                dense[index[name]] = confidence
        probs[row] = mapping.project_probs(dense)
    return probs, "stored_tags"


def _check_outputs(dataset, params: DisagreementParams) -> None:
    """Our own earlier outputs are replaced; anything else of the same name is the user's."""
    ours = runs.read_run_settings(dataset, params.run_key) is not None
    taken = [f for f in (params.missing_field, params.wrong_field, params.score_field) if dataset.has_sample_field(f)]
    if taken and not ours and not params.overwrite:
        raise RunConflictError(
            f"Fields {taken} already exist and were not written by Find disagreements; "
            "choose another output prefix or enable overwrite"
        )
    for name in taken:
        dataset.delete_sample_field(name)


def find_sample_disagreements(collection: foc.SampleCollection, params: DisagreementParams, *,
                              progress: ProgressFn | None = None) -> DisagreementResult:
    """Score every tagged and labelled sample of `collection`; save a view sorted by the score."""
    if len(collection) == 0:
        raise PluginInputError("The target view has no samples; nothing to compare")
    dataset = collection._root_dataset
    run = runs.read_tag_run(dataset, params.ram_field)
    settings = run.settings
    labels = distinct_labels(dataset, params.label_field)  # raises for unsupported label types
    if not labels:
        raise PluginInputError(f"Label field {params.label_field!r} holds no labels to compare with")
    synonyms = load_synonyms(params.synonyms) if params.synonyms else None
    vocab_names = list(run.vocabulary.names)
    mapping = build_label_mapping(labels, vocab_names, synonyms=synonyms)
    thresholds = mapping.project_thresholds(run.thresholds)

    result = DisagreementResult(
        saved_view=params.saved_view, score_field=params.score_field, missing_field=params.missing_field,
        wrong_field=params.wrong_field, score_source="", samples=len(collection),
        unmapped_labels=list(mapping.unmapped),
    )
    tagged = collection.exists(params.ram_field)
    result.untagged = result.samples - len(tagged)
    present = present_labels(tagged, params.label_field)
    ids = tagged.values("id")
    keep = [i for i, names in enumerate(present) if names is not None]
    result.unlabeled = len(ids) - len(keep)
    if not keep:
        raise PluginInputError(
            f"No sample in the view has both {params.ram_field!r} and {params.label_field!r} set; nothing to compare"
        )
    if progress is not None:
        progress(0, len(keep))
    compared = tagged.select([ids[i] for i in keep], ordered=True)
    probs, result.score_source = label_probabilities(compared, params, mapping, settings, vocab_names)
    label_sets = [{mapping.labels.index(name) for name in present[i] or ()} for i in keep]
    report = find_disagreements(label_sets, probs, thresholds=thresholds)

    _check_outputs(dataset, params)
    runs.record_run(dataset, params.run_key, {
        "ram_field": params.ram_field, "label_field": params.label_field,
        "ram_model_version": settings.get("model_version"), "mapping_digest": mapping.digest,
        "score_source": result.score_source, "saved_view": params.saved_view,
    })
    sample_ids = [ids[i] for i in keep]
    missing = {sid: issues_to_classifications([mapping.labels[t.label_index] for t in issues],
                                              [t.score for t in issues])
               for sid, issues in zip(sample_ids, report.missing)}
    wrong = {sid: issues_to_classifications([mapping.labels[t.label_index] for t in issues],
                                            [t.score for t in issues])
             for sid, issues in zip(sample_ids, report.doubtful)}
    dataset.set_values(params.missing_field, missing, key_field="id")
    dataset.set_values(params.wrong_field, wrong, key_field="id")
    dataset.set_values(params.score_field, dict(zip(sample_ids, report.sample_scores.tolist())), key_field="id")
    dataset.save_view(
        params.saved_view,
        dataset.exists(params.score_field).sort_by(F(params.score_field), reverse=True),
        description=f"{params.ram_field} vs {params.label_field}: most likely label errors first",
        overwrite=True,
    )

    result.compared = len(keep)
    result.missing_tags = sum(len(issues) for issues in report.missing)
    result.wrong_tags = sum(len(issues) for issues in report.doubtful)
    result.flagged_samples = sum(1 for m, d in zip(report.missing, report.doubtful) if m or d)
    result.classes = [row for row in report.class_summary.to_dict(mapping.labels) if row["missing"] or row["doubtful"]]
    if not result.flagged_samples:
        result.why_none = _why_none(result, str(settings.get("model_version") or ""))
    if progress is not None:
        progress(len(keep), len(keep))
    return result


def _why_none(result: DisagreementResult, model_version: str) -> str:
    """Why a run flagged nothing: a bare 0 reads as "the labels are clean" when the cause may
    be a test model or labels RAM cannot score."""
    reasons = [f"RAM's scores agree with the labels at the tag run's thresholds on all {result.compared} "
               "compared sample(s)"]
    if is_random_version(model_version):
        reasons.append(f"the tags come from a random-weight test model ({model_version}, try-out mode): its "
                       "scores mean nothing; tag with real weights to find real disagreements")
    if result.unmapped_labels:
        reasons.append(f"{len(result.unmapped_labels)} label(s) map to no RAM tag and are never flagged "
                       f"({', '.join(result.unmapped_labels[:5])})")
    return "no sample was flagged: " + "; ".join(reasons)
