"""What one fine-tune job may be told, and where a project's fine-tuned versions are registered.

A leaf module (pydantic only): the settings validate `--train-param` with it, the routes
accept it, and the worker process names the registry with it, all without importing the
training manager or FastAPI.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrainParams", "registry_name"]


def registry_name(project: str) -> str:
    """The model-registry name of a Label Studio project's fine-tuned versions."""
    return f"project-{project}"


class TrainParams(BaseModel):
    """What a server setting or a caller may set for one job; the rest are FinetuneConfig's
    defaults. `threads` caps the worker's torch threads (CPU training beside serving)."""

    model_config = ConfigDict(extra="forbid")
    epochs: int | None = Field(None, ge=1, le=1000)
    lr: float | None = Field(None, gt=0, lt=1)
    mode: Literal["head", "full"] | None = None
    batch_size: int | None = Field(None, ge=1, le=1024)
    seed: int | None = None
    val_split: float | None = Field(None, gt=0, lt=1)
    unfreeze_stages: int | None = Field(None, ge=0, le=4)
    threads: int | None = Field(None, ge=1, le=256)
