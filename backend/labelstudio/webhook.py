"""Turn Label Studio annotation webhooks into rows of the corrections store.

The final labels are kept both as Label Studio stored them and as RAM tags (through
the same label mapping the predictions used), so finetuning data can be built
without asking Label Studio again.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ..errors import LabelConfigError
from ..serving.projects import Projects
from ..store import Store
from .correction_targets import Targets, control_targets
from .project import ServedControl
from .results import annotated_values
from .schema import WebhookRequest, project_id_of

__all__ = ["DELETE_ACTIONS", "STORE_ACTIONS", "deleted_annotation_ids", "store_annotations"]

STORE_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"}
DELETE_ACTIONS = {"ANNOTATIONS_DELETED", "ANNOTATION_DELETED"}


def _as_list(value: Any) -> list[dict[str, Any]]:
    """One item or a list of them, as plain dicts (the schema has checked their types)."""
    items = value if isinstance(value, list) else [value]
    return [v.model_dump(exclude_unset=True) if isinstance(v, BaseModel) else v for v in items if v is not None]


def store_annotations(projects: Projects, store: Store, ram_names: Sequence[str], body: WebhookRequest) -> int:
    """Record each annotation of a webhook event as a correction: the final labels per control, the RAM
    tags they map onto (names from `ram_names`, the base vocabulary) and the classes reviewed."""
    project_id = project_id_of(body.project.id) if body.project else None
    label_config = body.project.label_config if body.project else None
    try:
        project = projects.project_model(label_config, project_id)
    except LabelConfigError:
        project = None  # a config RAM cannot serve: keep the raw result anyway
    tasks = {t.get("id"): t for t in _as_list(body.task)}
    stored = 0
    for annotation in _as_list(body.annotation):
        annotation_id = annotation.get("id")
        if not isinstance(annotation_id, int):
            continue
        task_id = annotation.get("task")
        if isinstance(task_id, dict):
            task_id = task_id.get("id")
        task = tasks.get(task_id) or (tasks[next(iter(tasks))] if len(tasks) == 1 else {})
        project_id = project_id or project_id_of(annotation.get("project"))
        result = annotation.get("result") if isinstance(annotation.get("result"), list) else []
        final: dict[str, list[Any]] = {}
        final_ram: list[dict[str, Any]] = []
        image_ref = None
        reviewed: set[int] = set()
        controls: dict[str, dict[str, str]] = {}
        if project is not None:
            data = task.get("data") if isinstance(task.get("data"), dict) else {}
            image_ref = data.get(project.controls[0].spec.data_key)
            targets = Targets(set(), set(), set())  # correction_targets: the training rule
            for control in project.controls:
                controls[control.spec.name] = {"type": control.spec.kind, "to_name": control.spec.to_name}
                values = annotated_values(control, result)
                final[control.spec.name] = values
                chosen = list(dict.fromkeys(_labels_of(control, values)))
                control_targets(control, chosen, targets)
                for label in chosen:
                    tags = control.mapping.ram_indices[control.mapping.column_of(label)]
                    index = tags[0] if len(tags) == 1 else None  # a disjunction names no one tag
                    final_ram.append(
                        {
                            "control": control.spec.name,
                            "label": label,
                            "ram_index": index,
                            "ram_name": None if index is None else ram_names[index],
                            **({"ram_any_of": list(tags)} if len(tags) > 1 else {}),
                        }
                    )
            reviewed = targets.reviewed
        else:
            for item in result:
                if isinstance(item, dict) and "from_name" in item:
                    final.setdefault(item["from_name"], []).append(item.get("value"))
                    if isinstance(item.get("type"), str) and isinstance(item.get("to_name"), str):
                        controls[item["from_name"]] = {"type": item["type"], "to_name": item["to_name"]}
        store.record_annotation(
            annotation_id=annotation_id,
            project=project_id,
            task_id=task_id if isinstance(task_id, int) else None,
            image_ref=image_ref if isinstance(image_ref, str) and _storable(image_ref) else None,
            final=final,
            final_ram_tags=final_ram,
            action=body.action,
            reviewed_ram=sorted(reviewed),
            controls=controls,
        )
        stored += 1
    return stored


def _storable(text: str) -> bool:
    """Task data is not typed (any field, any value); a reference with a lone surrogate
    cannot be stored as SQLite text, and is left out rather than failing the webhook."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _labels_of(control: ServedControl, values: list[Any]) -> list[str]:
    """Project labels (the text RAM was mapped from) behind stored values or paths."""
    spec = control.spec
    labels: list[str] = []
    for value in values:
        if spec.kind == "taxonomy" and isinstance(value, list) and tuple(value) in spec.paths:
            labels.append(spec.labels[spec.paths.index(tuple(value))])
        elif isinstance(value, str) and value in spec.values:
            labels.append(spec.labels[spec.values.index(value)])
    return labels


def deleted_annotation_ids(body: WebhookRequest) -> list[int]:
    ids = [a.get("id") for a in _as_list(body.annotations) + _as_list(body.annotation)]
    return [i for i in ids if isinstance(i, int)]
