"""Training, model versions and per-project thresholds.

Label Studio side: `POST /train` (what releases before the START_TRAINING webhook call),
`POST /job_status` and `GET /versions` (what its train-job and model-version views ask).
Native side: `/v1/train/...`, `/v1/models/{project}/...`, `/v1/projects/{id}/thresholds`.
"""
from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ram_model.errors import ConfigError

from .corrections_export import cached_image_of
from .errors import BackendError, BadRequest, error_body
from .ls_schema import project_id_of
from .project_runtime import registry_name
from .project_thresholds import check_manual, tuning_matrices
from .state import AppState, get_state
from .store import TrainJob
from .training import TrainParams

__all__ = ["router", "start_training"]

_log = logging.getLogger("backend.routes_train")
router = APIRouter(tags=["training and versions"])


# Label Studio project ids are integers; registry names and folders are built from them.
ProjectId = Annotated[str, Path(pattern=r"^[0-9]{1,18}$", description="Label Studio project id")]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$")]


class NotFound(BackendError):
    status_code = 404
    code = "not_found"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class LegacyTrainRequest(_Open):
    """Label Studio < 1.11 posts the annotated tasks here; we train from the store instead,
    which also holds corrections made before the backend was connected to this call."""

    project: str | int | None = None


def _job_body(job: TrainJob, created: bool | None = None) -> dict[str, Any]:
    body = job.to_dict()
    body.pop("params", None)
    body["params"] = {k: v for k, v in job.params.items() if k not in ("base", "min_val_images")}
    body["min_val_images"] = job.params.get("min_val_images")
    body["job"] = job.id  # the key Label Studio reads from a training answer
    # One line a person can read wherever the answer is shown (Label Studio's job view, logs).
    body["outcome"] = f"{job.state}: {job.message}" if job.message else job.state
    if created is not None:
        body["created"] = created
        body["status"] = "started" if created else "already running"
    return body


def start_training(state: AppState, project: str | None, trigger: str,
                   params: dict[str, Any] | None = None) -> JSONResponse:
    """Queue a job for `project` and answer 202 at once (200 with the running job if one is unfinished)."""
    if project is None:
        raise BadRequest("which project? the request names none")
    if state.training is None:
        raise BackendError("training is not available on this server")
    job, created = state.training.start(project, trigger=trigger, params=params,
                                        ls_access=state.label_studio(project), fetcher=state.fetcher)
    _log.info("project %s: %s training job %s (%s)", project, "queued" if created else "kept", job.id, trigger)
    return JSONResponse(_job_body(job, created), status_code=202 if created else 200)


async def _read_job(state: AppState, job_id: str) -> TrainJob | None:
    """The job as it stands, after failing it if its worker is gone (heartbeat, pid)."""
    job = await run_in_threadpool(state.store.get_job, job_id)
    if job is not None and state.training is not None and await run_in_threadpool(state.training.reap, job):
        job = await run_in_threadpool(state.store.get_job, job_id)
    return job


@router.post("/train", status_code=202)
async def train(body: LegacyTrainRequest, state: AppState = Depends(get_state)) -> JSONResponse:
    return start_training(state, project_id_of(body.project), "label_studio_train")


@router.post("/job_status")
async def job_status(body: dict[str, Any], state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Label Studio's train-job poll: `{"job": id}` -> `{"job_status": ...}` (410 if unknown)."""
    job = await _read_job(state, str(body.get("job")))
    if job is None:
        return JSONResponse(error_body("gone", f"no training job {body.get('job')!r}"), status_code=410)
    status = {"queued": "queued", "running": "started", "succeeded": "started"}.get(job.state, job.state)
    return {"job_status": status, **_job_body(job)}


@router.get("/versions")
async def versions(project: str | None = Query(None), state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Model versions Label Studio can list for a project (registered fine-tunes, newest last)."""
    project_id = project_id_of(project)
    records = await run_in_threadpool(state.store.models, project_id) if project_id else []
    base = state.engine.model_version
    return {"versions": [base] + [m.model_version for m in records]}


@router.post("/v1/train/{project}", status_code=202)
async def train_project(project: ProjectId, params: TrainParams | None = None,
                        state: AppState = Depends(get_state)) -> JSONResponse:
    return start_training(state, project, "api", (params or TrainParams()).model_dump(exclude_none=True))


@router.get("/v1/train/jobs")
async def list_jobs(project: str | None = None, limit: int = Query(100, ge=1, le=1000),
                    state: AppState = Depends(get_state)) -> dict[str, Any]:
    if state.training is not None:  # a job whose worker died shows as failed, not running
        await run_in_threadpool(state.training.reap_all)
    jobs = await run_in_threadpool(lambda: state.store.jobs(project=project, limit=limit))
    return {"jobs": [_job_body(j) for j in jobs]}


@router.get("/v1/train/jobs/{job_id}")
async def get_job(job_id: JobId, state: AppState = Depends(get_state)) -> dict[str, Any]:
    job = await _read_job(state, job_id)
    if job is None:
        raise NotFound(f"no training job {job_id!r}")
    return _job_body(job)


# -- versions -------------------------------------------------------------------------

def _registry(state: AppState):
    try:
        return state.models.registry()
    except ImportError as exc:
        raise BackendError(f"the model registry is not available: {exc}") from None


def _version_json(v) -> dict[str, Any]:
    return {"version": v.version, "created": v.created, "metrics": {k: v.metrics.get(k) for k in ("base", "new")
                                                                    if isinstance(v.metrics, dict)}}


@router.get("/v1/models/{project}")
async def project_models(project: ProjectId, state: AppState = Depends(get_state)) -> dict[str, Any]:
    records = await run_in_threadpool(state.store.models, project)
    runtime = await state.models.runtime(project)
    return {
        "project": project,
        "active": runtime.registry_version,
        "model_version": runtime.engine.model_version,
        "base_model_version": state.engine.model_version,
        "versions": [r.__dict__ for r in records],
        # {version: why it cannot be loaded}: what serves instead is `active` (None: the base model)
        "load_errors": state.models.load_failures.of(project),
    }


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@router.post("/v1/models/{project}/activate")
async def activate(project: ProjectId, body: ActivateRequest, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Serve a registered version for this project whatever its metrics (an operator's decision)."""
    registry = _registry(state)
    from ram_model.registry import RegistryError

    try:
        result = await run_in_threadpool(registry.promote, registry_name(project), body.version, force=True)
    except RegistryError as exc:
        raise NotFound(str(exc)) from None
    await _set_serve_base(state, project, False)
    runtime = await state.models.runtime(project)
    return {"project": project, "active": body.version, "reason": result.reason,
            "model_version": runtime.engine.model_version}


@router.post("/v1/models/{project}/rollback")
async def rollback(project: ProjectId, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Go back to the version that was active before the current one; before the first
    fine-tune that is the base model (until a version is activated or promoted again)."""
    registry = _registry(state)
    from ram_model.registry import RegistryError

    if state.models.active_version(project) is None:
        raise BadRequest(f"project {project} already serves the base model; there is nothing to roll back")
    try:
        previous = await run_in_threadpool(registry.rollback, registry_name(project))
    except RegistryError:
        previous = None
    await _set_serve_base(state, project, previous is None)
    runtime = await state.models.runtime(project)
    return {"project": project, "active": previous.version if previous else None,
            "model_version": runtime.engine.model_version}


async def _set_serve_base(state: AppState, project: str, serve_base: bool) -> None:
    settings = dict(await run_in_threadpool(state.store.project_settings, project))
    if bool(settings.get("serve_base")) != serve_base:
        settings["serve_base"] = serve_base
        await run_in_threadpool(state.store.set_project_settings, project, settings)
    state.models.invalidate(project)


# -- thresholds -----------------------------------------------------------------------

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
    runtime = await state.models.runtime(project)
    settings = state.models.project_settings(project)
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
    runtime = await state.models.runtime(project)
    try:
        manual = check_manual(body.manual, runtime.engine.vocab.names)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    settings = dict(await run_in_threadpool(state.store.project_settings, project))
    settings["manual"] = manual
    await run_in_threadpool(state.store.set_project_settings, project, settings)
    state.models.invalidate(project)
    return await _thresholds_answer(state, project)


@router.post("/v1/projects/{project}/thresholds/tune")
async def tune(project: ProjectId, body: TuneRequest | None = None, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Tune the project's thresholds on its corrections (the review core's `tune_thresholds`),
    with the model that serves the project scoring the cached images."""
    from ram_model.review import tune_thresholds

    body = body or TuneRequest()
    runtime = await state.models.runtime(project)
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
    state.models.invalidate(project)
    return await _thresholds_answer(state, project)
