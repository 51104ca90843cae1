"""Turn RAM probabilities into one Label Studio prediction per task, and read the
task's existing annotation back into label indices for the mislabeling score.

The result format itself (items, the score rule, the annotation that counts) is
`ram_client.labelstudio.results`, shared with the plugin; this module decides which
labels a served control chooses."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ram_client.labelstudio.results import (choice_item, control_values, counting_annotation,
                                            prediction_score)
from ram_model.review import find_disagreements
from ram_model.inference.thresholds import fired_indices

from .project import ProjectModel, ServedControl
from .score_text import score_text_result

__all__ = ["ChosenLabel", "TaskOutcome", "annotated_columns", "annotated_values", "latest_annotation", "predict_task"]


@dataclass(frozen=True)
class ChosenLabel:
    entry: int  # index into the control's spec.labels / values / paths
    label: str
    value: str
    score: float


@dataclass(frozen=True)
class TaskOutcome:
    result: list[dict[str, Any]]
    score: float | None
    mislabeling: float | None
    chosen: dict[str, list[ChosenLabel]]


def _choose(control: ServedControl, probs_k: np.ndarray, top_k: int | None) -> list[ChosenLabel]:
    """Entries that fire (the engine's one rule), best first; single-choice controls keep the best."""
    label_probs = control.mapping.project_probs(probs_k)[list(control.columns)]
    order = fired_indices(label_probs, control.thresholds, top_k=top_k if control.spec.multiple else 1)
    spec = control.spec
    return [ChosenLabel(int(i), spec.labels[i], spec.values[i], float(label_probs[i])) for i in order]


def _result_item(control: ServedControl, chosen: list[ChosenLabel]) -> dict[str, Any]:
    spec = control.spec
    values = [spec.paths[c.entry] for c in chosen] if spec.kind == "taxonomy" else [c.value for c in chosen]
    return choice_item(spec.name, spec.to_name, spec.kind, values, [c.score for c in chosen])


def latest_annotation(task: dict[str, Any]) -> Mapping[str, Any] | None:
    """The annotation that counts (`ram_client.labelstudio.results.counting_annotation`)."""
    return counting_annotation(task.get("annotations"))


def annotated_columns(control: ServedControl, result: Sequence[dict[str, Any]]) -> set[int]:
    """Mapping columns the annotation chose for this control (values it cannot name are skipped)."""
    spec = control.spec
    columns: set[int] = set()
    for item in result:
        if not isinstance(item, dict) or item.get("from_name") != spec.name:
            continue
        value = item.get("value") or {}
        if spec.kind == "taxonomy":
            for path in value.get("taxonomy") or []:
                if isinstance(path, list) and tuple(path) in spec.paths:
                    columns.add(control.columns[spec.paths.index(tuple(path))])
        else:
            for choice in value.get("choices") or []:
                if choice in spec.values:
                    columns.add(control.columns[spec.values.index(choice)])
    return columns


def annotated_values(control: ServedControl, result: Sequence[dict[str, Any]]) -> list[Any]:
    """The raw values an annotation chose for a control, as Label Studio stores them."""
    return control_values(result, control.spec.name, control.spec.kind)


def _mislabeling(project: ProjectModel, probs_by_key: dict[str, np.ndarray], annotation: dict[str, Any]) -> float:
    """How strongly RAM disputes the existing annotation: the review core's sample score,
    the worst over the served controls (a task is suspect if any control is)."""
    worst = 0.0
    for control in project.controls:
        labels = [annotated_columns(control, annotation["result"])]
        probs = control.mapping.project_probs(probs_by_key[control.spec.data_key])[None, :]
        report = find_disagreements(labels, probs, thresholds=control.column_thresholds)
        worst = max(worst, float(report.sample_scores[0]))
    return worst


def predict_task(project: ProjectModel, probs_by_key: dict[str, np.ndarray], task: dict[str, Any]) -> TaskOutcome:
    """The prediction for one task; `probs_by_key` holds RAM's (K,) probabilities for
    each image field the controls read (usually just `image`)."""
    result: list[dict[str, Any]] = []
    chosen_by_control: dict[str, list[ChosenLabel]] = {}
    for control in project.controls:
        chosen = _choose(control, probs_by_key[control.spec.data_key], project.top_k)
        chosen_by_control[control.spec.name] = chosen
        if chosen:
            result.append(_result_item(control, chosen))
    score = prediction_score(result) if result else None
    if project.score_text_to is not None and result:
        text = score_text_result(project.score_text_to, chosen_by_control, several=len(project.controls) > 1)
        if text is not None:
            result.append(text)
    annotation = latest_annotation(task)
    mislabeling = _mislabeling(project, probs_by_key, annotation) if annotation is not None else None
    return TaskOutcome(result, score, mislabeling, chosen_by_control)
