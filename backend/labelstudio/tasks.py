"""Types of what the server reads from Label Studio's tasks and annotations.

Tasks, annotations and webhook payloads are JSON written by whoever can import
tasks or call the server. Everything the server reads from them is checked here, once,
so the code that uses them (predictions, the corrections store)
never meets a string where it expects a list, or an id SQLite cannot store. Fields we
do not read stay open (`extra="allow"`) and untouched, since Label Studio adds fields
between releases.

`/predict` checks each task on its own (`check_task`), so one malformed task gets
its own error and the other tasks of the batch their predictions.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError

__all__ = [
    "Annotation",
    "Id",
    "Text",
    "LsTask",
    "ResultItem",
    "ResultValue",
    "TaskRef",
    "WebhookProject",
    "check_task",
    "describe_validation_error",
    "task_id_hint",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Label Studio ids are SQL integers; `true` is not an id, nor is "12".
Id = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]


def _valid_unicode(value: str) -> str:
    # JSON may spell a lone surrogate ("\ud800"); such a string cannot be stored in
    # SQLite, logged as UTF-8 or sent back, so it is refused where it arrives.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text (it contains a lone surrogate)") from None
    return value


# Every string the server reads, stores or echoes is of this type.
Text = Annotated[str, AfterValidator(_valid_unicode)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResultValue(_Open):
    """A result's `value`; only what Choices and Taxonomy write is typed."""

    choices: list[Text] | None = None
    taxonomy: list[list[Text]] | None = None


class ResultItem(_Open):
    from_name: Text | None = None
    to_name: Text | None = None
    type: Text | None = None
    value: ResultValue | None = None


class TaskRef(_Open):
    id: Id | None = None


class Annotation(_Open):
    id: Id | None = None
    result: list[ResultItem] | None = None
    was_cancelled: bool | None = None
    updated_at: Text | None = None
    task: Id | TaskRef | None = None
    project: Id | Text | None = None


class LsTask(_Open):
    id: Id | None = None
    data: dict[Text, Any] | None = None
    annotations: list[Annotation] | None = None


class WebhookProject(_Open):
    id: Id | Text | None = None
    label_config: Text | None = None


_TASK = TypeAdapter(LsTask)


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """`where: what` for the first few problems, in the shape the 422 answers use."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where or 'value'}: {error.get('msg')}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def check_task(raw: Any) -> dict[str, Any]:
    """The task as a plain dict whose read fields have the types above; `ValueError`
    with a readable message otherwise. Unset fields stay absent, as they arrived."""
    if not isinstance(raw, dict):
        raise ValueError(f"a task must be a JSON object, got {_json_type(raw)}")
    try:
        return _TASK.validate_python(raw).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise ValueError(f"malformed task: {describe_validation_error(exc)}") from None


def task_id_hint(raw: Any) -> int | None:
    """The id to answer a rejected task with, when it is a usable one."""
    value = raw.get("id") if isinstance(raw, dict) else None
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
