"""Response bodies of the native API (`/v1/tag`, `/v1/info`): closed, so the OpenAPI spec
says exactly what we answer (the client, `ram_client`, reads the same field names)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["InfoResponse", "InfoVocabulary", "NativeImageResult", "NativeTag", "NativeTagResponse"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NativeTag(_Closed):
    index: int
    name: str
    name_zh: str
    score: float


class NativeImageResult(_Closed):
    source: str
    ok: bool
    error: str | None = None
    tags: list[NativeTag] = Field(default_factory=list)
    probs: list[float] | None = None
    embedding: list[float] | None = None


class NativeTagResponse(_Closed):
    model_version: str
    results: list[NativeImageResult]


class InfoVocabulary(_Closed):
    """The tag vocabulary in class order; `thresholds` are the class-file values (before overrides)."""

    names: list[str]
    names_zh: list[str]
    thresholds: list[float]
    digest: str


class InfoResponse(_Closed):
    variant: str
    vocabulary_size: int
    vocabulary: InfoVocabulary
    model_version: str
    device: str
    thresholds: dict[str, float | None]
    queue_depth: int
    max_queue: int
    max_batch_size: int
    coalesce: bool
    open_set_classes: list[str] = []
