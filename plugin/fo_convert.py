"""Conversions between FiftyOne label fields and the plain lists the review core works on.

Every job reads labels through here, so the set of supported label types, and what
"the tags of a sample" means for each of them, is decided in exactly one place.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import fiftyone as fo
import fiftyone.core.collections as foc

from plugin.errors import PluginInputError

__all__ = [
    "SAMPLE_TAGS",
    "SUPPORTED_LABEL_TYPES",
    "LabelKind",
    "distinct_labels",
    "issues_to_classifications",
    "label_kind",
    "present_labels",
    "tag_confidences",
    "tags_to_classifications",
]

LabelKind = Literal["classification", "classifications", "detections", "tags"]

# Pseudo field name: the sample's own `tags` list stands in for a label field.
SAMPLE_TAGS = "tags"

_KIND_BY_TYPE: dict[type, LabelKind] = {
    fo.Classification: "classification",
    fo.Classifications: "classifications",
    fo.Detections: "detections",
}
SUPPORTED_LABEL_TYPES = tuple(_KIND_BY_TYPE)

_LABEL_PATH: dict[LabelKind, str] = {
    "classification": "{field}.label",
    "classifications": "{field}.classifications.label",
    "detections": "{field}.detections.label",
    "tags": "tags",
}


def label_kind(collection: foc.SampleCollection, field: str) -> LabelKind:
    """Which supported label type `field` holds; a clear error for anything else.

    Detections count as present tags (a box of "dog" means the image shows a dog), the
    sample's `tags` list counts as one Classifications per sample.
    """
    if field == SAMPLE_TAGS:
        return "tags"
    schema = collection.get_field_schema()
    if field not in schema:
        raise PluginInputError(
            f"Field {field!r} does not exist on dataset {collection._dataset.name!r}; "
            f"fields present: {', '.join(sorted(schema))}"
        )
    document_type = getattr(schema[field], "document_type", None)
    kind = _KIND_BY_TYPE.get(document_type)  # type: ignore[arg-type]
    if kind is None:
        found = document_type.__name__ if document_type else type(schema[field]).__name__
        raise PluginInputError(
            f"Field {field!r} holds {found}; RAM can only compare with Classification, "
            f"Classifications, Detections fields or the sample tags ('tags')"
        )
    return kind


def _label_path(collection: foc.SampleCollection, field: str) -> tuple[LabelKind, str]:
    kind = label_kind(collection, field)
    return kind, _LABEL_PATH[kind].format(field=field)


def present_labels(collection: foc.SampleCollection, field: str) -> list[list[str] | None]:
    """Per sample (collection order): the distinct labels present, or None where unlabeled.

    None (the field is unset) and [] (labelled, nothing present) differ: only the latter
    says the image shows none of the classes, so only it may yield "missing" tags.
    """
    kind, path = _label_path(collection, field)
    raw = collection.values(path)
    if kind == "classification":
        return [None if value is None else [value] for value in raw]
    if kind != "tags":
        # values() gives None both for an unset field and a label list that is unset.
        present = collection.values(field)
        raw = [None if label is None else (names or []) for label, names in zip(present, raw)]
    return [None if names is None else list(dict.fromkeys(n for n in names if n)) for names in raw]


def distinct_labels(collection: foc.SampleCollection, field: str) -> list[str]:
    """The label names used anywhere in `field`, sorted, for a mapping that is stable across runs."""
    _, path = _label_path(collection, field)
    return sorted(name for name in collection.distinct(path) if name)


def tags_to_classifications(
    names: Sequence[str],
    scores: Sequence[float],
    *,
    model_version: str,
    names_zh: Sequence[str] | None = None,
) -> fo.Classifications:
    """RAM's selected tags as labels; `model_version` on the list lets a rerun skip done samples.

    Chinese names are an opt-in `name_zh` attribute: a dynamic attribute makes building
    each label ~70% slower, which dominates the cost of writing results.
    """
    if names_zh is None:
        labels = [fo.Classification(label=name, confidence=float(score)) for name, score in zip(names, scores)]
    else:
        labels = [
            fo.Classification(label=name, confidence=float(score), name_zh=name_zh)
            for name, name_zh, score in zip(names, names_zh, scores)
        ]
    return fo.Classifications(classifications=labels, model_version=model_version)


def issues_to_classifications(names: Sequence[str], scores: Sequence[float]) -> fo.Classifications:
    """Review findings as labels, so the App can show, filter and colour them like any tag."""
    return fo.Classifications(
        classifications=[
            fo.Classification(label=name, confidence=float(score)) for name, score in zip(names, scores)
        ]
    )


def tag_confidences(collection: foc.SampleCollection, ram_field: str) -> list[dict[str, float] | None]:
    """Per sample: RAM tag name -> confidence as stored by the tag job, or None if untagged."""
    present = collection.values(ram_field)
    names = collection.values(f"{ram_field}.classifications.label")
    confidences = collection.values(f"{ram_field}.classifications.confidence")
    out: list[dict[str, float] | None] = []
    for label, sample_names, sample_conf in zip(present, names, confidences):
        if label is None:
            out.append(None)
            continue
        out.append({n: float(c or 0.0) for n, c in zip(sample_names or [], sample_conf or [])})
    return out
