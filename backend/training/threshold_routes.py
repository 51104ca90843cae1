"""Per-project thresholds: read, set manual ones, tune on the corrections (`/v1/projects/{id}/thresholds`)."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ram_model.errors import ConfigError

from ..errors import BadRequest
from ..serving.project_thresholds import check_manual, tuning_matrices
from ..state import AppState, get_state
from .export import cached_image_of
from .routes import ProjectId

__all__ = ["router"]

router = APIRouter(tags=["training and versions"])


class ThresholdsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Values are checked by `check_manual` as they came (true is not 1.0, "0.5" is not 0.5).
    manual: dict[str, Any] = Field(default_factory=dict)


class TuneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Literal["f1", "precision"] = "f1"
    min_precision: float | None = Field(None, gt=0, le=1)
    min_count: int = Field(5, ge=1)
    shrink: float = Field(10, ge=0)


async def _thresholds_answer(state: AppState, project: str) -> dict[str, Any]:
    runtime = await state.projects.runtime(project)
    settings = state.projects.project_settings(project)
    names = runtime.engine.vocab.names
    return {
        "project": project,
        "manual": settings.get("manual") or {},
        "tuned": settings.get("tuned") or {},
        "tuned_report": settings.get("tuned_report"),
        "thresholds_digest": runtime.thresholds_digest,
        "model_version": runtime.engine.model_version,
        "effective": {names[i]: float(runtime.ram_thresholds[i])
                      for i in sorted(set(_index(names, settings.get("manual"))) | set(_index(names, settings.get("tuned"))))},
    }


def _index(names, layer) -> list[int]:
    lookup = {n: i for i, n in enumerate(names)}
    return [lookup[n] for n in (layer or {}) if n in lookup]


@router.get("/v1/projects/{project}/thresholds")
async def get_thresholds(project: ProjectId, state: AppState = Depends(get_state)) -> dict[str, Any]:
    return await _thresholds_answer(state, project)


@router.put("/v1/projects/{project}/thresholds")
async def put_thresholds(project: ProjectId, body: ThresholdsBody, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Set the project's manual thresholds ({RAM tag: value}); an empty object clears them."""
    runtime = await state.projects.runtime(project)
    try:
        manual = check_manual(body.manual, runtime.engine.vocab.names)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    settings = dict(await run_in_threadpool(state.store.project_settings, project))
    settings["manual"] = manual
    await run_in_threadpool(state.store.set_project_settings, project, settings)
    state.projects.invalidate(project)
    return await _thresholds_answer(state, project)


@router.post("/v1/projects/{project}/thresholds/tune")
async def tune(project: ProjectId, body: TuneRequest | None = None, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Tune the project's thresholds on its corrections (the review core's `tune_thresholds`),
    with the model that serves the project scoring the cached images."""
    from ram_model.review import tune_thresholds

    body = body or TuneRequest()
    runtime = await state.projects.runtime(project)
    corrections = await run_in_threadpool(state.store.corrections, project=project)
    with_images = [(c, path) for c in corrections if (path := cached_image_of(state.store, c)) is not None]
    labels, used = tuning_matrices([c for c, _ in with_images], len(runtime.engine.vocab))
    if not used:
        raise BadRequest(f"project {project} has no corrections with a cached image and a mapped label to tune on")
    paths = [with_images[i][1] for i in used]
    predictions = await runtime.batcher.submit(paths)
    ok = [i for i, p in enumerate(predictions) if p.ok]
    if not ok:
        raise BadRequest("none of the cached images could be read")
    probs = np.stack([predictions[i].probs for i in ok])
    prior = state.policy.resolve(runtime.engine.vocab)
    try:
        tuned = await run_in_threadpool(
            tune_thresholds, labels[ok], probs, target=body.target, min_precision=body.min_precision,
            prior=prior, min_count=body.min_count, shrink=body.shrink,
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    names = runtime.engine.vocab.names
    changed = {names[c.index]: float(c.threshold) for c in tuned.per_class if c.source != "prior"}
    settings = dict(await run_in_threadpool(state.store.project_settings, project))
    settings["tuned"] = changed
    settings["tuned_report"] = {
        "images": len(ok), "target": body.target, "why_none": tuned.why_none(),
        "classes": [{"name": names[c.index], "threshold": float(c.threshold), "prior": float(c.prior),
                     "positives": c.positives, "negatives": c.negatives, "source": c.source}
                    for c in tuned.per_class if c.positives or c.negatives],
    }
    await run_in_threadpool(state.store.set_project_settings, project, settings)
    state.projects.invalidate(project)
    return await _thresholds_answer(state, project)
