"""What one fine-tune job may be told, and where a project's fine-tuned versions are registered.

The settings validate `--train-param` with it, the routes accept it, and the worker process
names the registry with it, all without importing the training manager or FastAPI. The
options themselves are the fine-tuner's declared training options (`FinetuneConfig`), so a
new one is accepted here, checked by the same rules, without a line in this module.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ram_model.finetune.config import TRAINING_OPTIONS, FinetuneConfig, FinetuneError
from ram_model.model.config import EngineConfig
from ram_model.option import OptionSpec

__all__ = ["TrainParams", "registry_name"]

# What the worker decides itself: it decodes in its own process and writes no official .pth.
_WORKER_OWNED = ("num_workers", "official_layout")


def registry_name(project: str) -> str:
    """The model-registry name of a Label Studio project's fine-tuned versions."""
    return f"project-{project}"


class _TrainParamsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _the_run_accepts_them(self) -> "_TrainParamsBase":
        """The combination is checked by the fine-tuner's own rules (mode full with unfreeze_stages, an
        lr of 0 ...), so a bad job is refused when asked for, not when its worker starts."""
        given = {k: v for k, v in self.model_dump(exclude_none=True).items() if k != "threads"}
        if "no_augment" in given:
            given["augment"] = not given.pop("no_augment")
        try:
            FinetuneConfig(data=("-",), base=EngineConfig(), output="", **given)
        except FinetuneError as exc:
            raise ValueError(str(exc)) from None
        return self


def _field(spec: OptionSpec) -> tuple[Any, Any]:
    kind: Any = tuple[str, ...] if spec.kind is list else spec.kind
    if spec.choices:
        kind = Literal[spec.choices]  # type: ignore[valid-type]
    return kind | None, Field(None, ge=spec.low, le=spec.high, description=spec.help)


# What a server setting (`--train-param`) or a training request may set for one job: every
# declared training option (ram_model.finetune.config) but those the worker owns, plus
# `threads`, which caps the worker's torch threads (CPU training beside serving). The rest
# are FinetuneConfig's defaults.
TrainParams = create_model(
    "TrainParams", __base__=_TrainParamsBase, __module__=__name__,
    threads=(int | None, Field(None, ge=1, le=256)),
    **{spec.name: _field(spec) for spec in TRAINING_OPTIONS if spec.name not in _WORKER_OWNED},
)
