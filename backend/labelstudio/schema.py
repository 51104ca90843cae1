"""Request and response bodies of the Label Studio ML-backend protocol (v2).

Label Studio sends more fields than we read and adds new ones between releases, so
requests accept extra keys; responses are closed so the OpenAPI spec says exactly
what we answer.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .tasks import Annotation, LsTask, Text, WebhookProject

__all__ = [
    "HealthResponse",
    "PredictRequest",
    "PredictResponse",
    "SetupRequest",
    "SetupResponse",
    "TaskPrediction",
    "WebhookRequest",
    "WebhookResponse",
    "project_id_of",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


def project_id_of(project: Any) -> str | None:
    """Label Studio names a project `"<id>.<created timestamp>"` in ML requests; the id
    is what stays stable across label-config edits."""
    if project is None:
        return None
    if isinstance(project, dict):
        project = project.get("id")
        return None if project is None else str(project)
    text = str(project)
    return text.split(".", 1)[0] or None


class HealthResponse(_Closed):
    status: str = "UP"
    model_class: str
    model_version: str
    variant: str
    device: str


class SetupRequest(_Open):
    project: Text | int | None = None
    label_config: Text | None = Field(None, alias="schema")
    hostname: Text | None = None
    access_token: Text | None = None
    model_version: Text | None = None
    extra_params: dict[Text, Any] | None = None


class ControlReport(_Closed):
    from_name: str
    to_name: str
    type: str
    labels: int
    mapped: int
    unmapped: list[str]
    open_set: list[str] = []


class SetupResponse(_Closed):
    model_version: str
    controls: list[ControlReport]


class PredictParams(_Open):
    login: Text | None = None
    password: Text | None = None
    context: Any = None


class PredictRequest(_Open):
    # Each task is checked on its own (`tasks.check_task`): one malformed task gets
    # its own error, the others their predictions. The count is capped by the route
    # (--max-predict-tasks, a 413), the bytes by the body limit.
    tasks: list[Any]
    project: Text | int | None = None
    label_config: Text | None = None
    params: PredictParams | None = None


class TaskPrediction(_Closed):
    """One prediction per task. A task whose image failed carries `error` and no
    `result`: Label Studio then stores nothing for it (and logs our message) instead of
    an empty prediction that would stop it from asking again."""

    result: list[dict[str, Any]] | None = None
    score: float | None = None
    model_version: str
    task: int | None = None
    error: str | None = None


class PredictResponse(_Closed):
    results: list[TaskPrediction]


class WebhookRequest(_Open):
    """`ANNOTATION_CREATED/UPDATED` carry one annotation and its task,
    `ANNOTATIONS_CREATED` lists of both, `ANNOTATIONS_DELETED` a list of ids."""

    action: Text = Field(..., min_length=1, max_length=100)
    project: WebhookProject | None = None
    annotation: Annotation | list[Annotation] | None = None
    annotations: list[Annotation] | None = None
    task: LsTask | list[LsTask] | None = None


class WebhookResponse(_Closed):
    status: str
    action: str
    stored: int = 0
    detail: str | None = None
