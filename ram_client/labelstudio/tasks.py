"""What goes into a Label Studio project and comes back out: the labeling config, the tasks
with RAM's prediction, and the reviewed choices of an annotation.

One labeling config for everything the plugin sends: an image and one multi-choice
`Choices` over the project's labels. The task data carries the keys the round trip relies
on (`ram_sample_id`, `ram_round`) and the numbers a reviewer sorts by in the Data Manager
(`ram_uncertainty`, `ram_disagreement`). "Send review batch" and "Export RAM finetuning
data" write the same keys, so "Load reviews" reads back tasks made either way (and the
`fiftyone_id` key that exports before this layer wrote).

The result items and their scores follow `results` (the rules the server uses too).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from .client import LabelStudioError
from .results import choice_item, control_values, counting_annotation, prediction_score

if TYPE_CHECKING:  # duck-typed at run time: ram_client never imports ram_model
    from ram_model.review import LabelMapping

__all__ = [
    "LS_FROM_NAME",
    "reviewed_annotation",
    "LS_LOCAL_FILES_PREFIX",
    "LS_TO_NAME",
    "LEGACY_SAMPLE_ID_KEYS",
    "SAMPLE_ID_KEY",
    "SUGGESTION_KEY",
    "ROUND_KEY",
    "Review",
    "choices_config",
    "config_choices",
    "local_files_url",
    "ram_prediction",
    "suggested_labels",
    "read_review",
    "sample_id_of",
]

# Label Studio serves files under LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT at this URL.
LS_LOCAL_FILES_PREFIX = "/data/local-files/?d="
# Control names of the labeling config (also used by the export's tasks).
LS_FROM_NAME, LS_TO_NAME = "tags", "image"
# Task data keys: which FiftyOne sample a task is, and the round that sent it.
SAMPLE_ID_KEY, ROUND_KEY = "ram_sample_id", "ram_round"
# What the finetuning export wrote before it used SAMPLE_ID_KEY; still read, never written.
LEGACY_SAMPLE_ID_KEYS = ("fiftyone_id",)
# RAM's suggested labels, also in the task data: Label Studio's export lists predictions by id only.
SUGGESTION_KEY = "ram_suggestion"


def choices_config(labels: Sequence[str]) -> str:
    """An image with one multi-choice list of `labels` (sorted, so the same set gives the same config)."""
    if not labels:
        raise LabelStudioError("No labels to offer: the label field holds none and no classes were given")
    choices = "".join(f"<Choice value={quoteattr(name)}/>" for name in sorted(labels))
    return (f'<View><Image name="{LS_TO_NAME}" value="$image"/>'
            f'<Choices name="{LS_FROM_NAME}" toName="{LS_TO_NAME}" choice="multiple" showInline="true">'
            f'{choices}</Choices></View>')


def config_choices(label_config: str) -> list[str]:
    """The choice values of a config `choices_config` wrote (to check a reused project still fits)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as e:
        raise LabelStudioError(f"The Label Studio project's labeling config is not valid XML: {e}") from None
    for element in root.iter("Choices"):
        if element.get("name") == LS_FROM_NAME:
            return sorted(choice.get("value", "") for choice in element.iter("Choice"))
    return []


def local_files_url(path: str, document_root: str) -> str | None:
    """The URL Label Studio serves `path` at, or None when it lies outside the document root."""
    relative = os.path.relpath(os.path.realpath(path), os.path.realpath(document_root))
    if relative.startswith(".."):
        return None
    return LS_LOCAL_FILES_PREFIX + quote(Path(relative).as_posix())


def suggested_labels(prediction: Sequence[Mapping[str, Any]]) -> list[str]:
    """The labels a `ram_prediction` suggests."""
    return _choices(prediction[0]["result"]) if prediction else []


def ram_prediction(confidences: Mapping[str, float] | None, mapping: LabelMapping, model_version: str | None,
                   *, score: float | None = None) -> list[dict[str, Any]]:
    """RAM's fired tags, named in the project's labels, as one Label Studio `choices` prediction.

    A label takes the best confidence among the RAM tags it maps to (as the server's label
    mapping does); the item and the prediction score by `results.item_score` /
    `prediction_score`, the server's rule. `score` replaces the prediction's overall score
    (what Label Studio sorts by): "Send review batch" sorts by 1 - uncertainty.
    """
    if confidences is None:
        return []
    chosen: dict[str, float] = {}
    for label, indices in zip(mapping.labels, mapping.ram_indices):
        scores = [confidences[mapping.ram_names[i]] for i in indices if mapping.ram_names[i] in confidences]
        if scores:
            chosen[label] = max(scores)
    if not chosen:
        return [{"model_version": model_version, "score": 0.0 if score is None else score, "result": []}]
    names = sorted(chosen, key=lambda name: (-chosen[name], name))
    result = [choice_item(LS_FROM_NAME, LS_TO_NAME, "choices", names, [chosen[name] for name in names])]
    overall = prediction_score(result) if score is None else score
    return [{"model_version": model_version, "score": overall, "result": result}]


def reviewed_annotation(labels) -> list[dict[str, Any]]:
    """A sample's reviewed labels as one Label Studio annotation (what a reviewer submitted),
    so an imported task arrives labelled, not only pre-annotated."""
    result = [{"from_name": LS_FROM_NAME, "to_name": LS_TO_NAME, "type": "choices",
               "value": {"choices": sorted(set(labels))}}]
    return [{"result": result, "was_cancelled": False, "ground_truth": False}]


@dataclass(frozen=True)
class Review:
    """The reviewed labels of one task: its latest submitted (not skipped) annotation."""

    task_id: int
    sample_id: str
    round: int | None
    annotation_id: int
    labels: list[str]
    reviewer: int | None
    updated_at: str
    suggested: list[str] | None


def sample_id_of(data: Mapping[str, Any]) -> str | None:
    """The FiftyOne sample a task stands for (SAMPLE_ID_KEY, or a legacy key of older exports)."""
    for key in (SAMPLE_ID_KEY, *LEGACY_SAMPLE_ID_KEYS):
        if data.get(key):
            return str(data[key])
    return None


def read_review(task: Mapping[str, Any]) -> Review | None:
    """The review of an exported task, or None if nobody has submitted one (or it was skipped)."""
    data = task.get("data") or {}
    sample_id = sample_id_of(data)
    if not sample_id:
        return None
    latest = counting_annotation(task.get("annotations"))
    if latest is None:
        return None
    reviewer = latest.get("completed_by")
    if isinstance(reviewer, Mapping):
        reviewer = reviewer.get("id")
    round_value = data.get(ROUND_KEY)
    return Review(
        task_id=int(task["id"]), sample_id=sample_id,
        round=int(round_value) if isinstance(round_value, (int, float, str)) and str(round_value).isdigit() else None,
        annotation_id=int(latest["id"]), labels=_choices(latest.get("result") or []),
        reviewer=int(reviewer) if isinstance(reviewer, int) else None,
        updated_at=str(latest.get("updated_at") or latest.get("created_at") or ""),
        suggested=sorted(data[SUGGESTION_KEY]) if isinstance(data.get(SUGGESTION_KEY), list) else None,
    )


def _choices(result: Sequence[Any]) -> list[str]:
    return sorted(dict.fromkeys(control_values(result, LS_FROM_NAME)))
