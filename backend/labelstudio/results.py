"""Turn RAM probabilities into one Label Studio prediction per task.

Label Studio keeps `result`, `score` and `model_version` of an ML backend's prediction
(1.23: `MLBackend._get_predictions_from_ml_backend`), so that is all a task gets; where
existing labels and RAM disagree is the review core's question, asked by the FiftyOne
plugin's review round over Label Studio's annotations.

The result format itself (items, the score rule, the annotation that counts) is
`ram_client.labelstudio.results`, shared with the plugin; this module decides which
labels a served control chooses."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ram_client.labelstudio.results import choice_item, control_values, prediction_score
from ram_model.inference.thresholds import fired_indices

from .project import ProjectModel, ServedControl
from .score_text import score_text_result

__all__ = ["ChosenLabel", "TaskOutcome", "annotated_values", "predict_task"]


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


def annotated_values(control: ServedControl, result: Sequence[dict[str, Any]]) -> list[Any]:
    """The raw values an annotation chose for a control, as Label Studio stores them."""
    return control_values(result, control.spec.name, control.spec.kind)


def predict_task(project: ProjectModel, probs_by_key: dict[str, np.ndarray]) -> TaskOutcome:
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
    return TaskOutcome(result, score, chosen_by_control)
