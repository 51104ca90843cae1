"""Training jobs, and what the other training routes share (path types, NotFound).

Label Studio side: `POST /train` (what releases before the START_TRAINING webhook call),
`POST /job_status` and `GET /versions` (what its train-job and model-version views ask).
Native side: `/v1/train/...`. Model versions are `model_routes` (`/v1/models/{project}/...`),
per-project thresholds `threshold_routes` (`/v1/projects/{id}/thresholds`).
"""
from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from ..errors import BackendError, BadRequest, error_body
from ..labelstudio.schema import project_id_of
from ..state import AppState, get_state
from ..store import TrainJob
from .params import TrainParams

__all__ = ["JobId", "NotFound", "ProjectId", "router", "start_training"]

_log = logging.getLogger("backend.training.routes")
router = APIRouter(tags=["training and versions"])  # one tag for the three training routers


# Label Studio project ids are integers; registry names and folders are built from them.
ProjectId = Annotated[str, Path(pattern=r"^[0-9]{1,18}$", description="Label Studio project id")]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$")]


class NotFound(BackendError, status_code=404, code="not_found"):
    """No training job of that id, or no registry version of that name."""


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
                                        ls_access=state.projects.label_studio(project), fetcher=state.fetcher)
    _log.info("project %s: %s training job %s (%s)", project, "queued" if created else "kept", job.id, trigger)
    return JSONResponse(_job_body(job, created), status_code=202 if created else 200)


@router.post("/train", status_code=202)
async def train(body: LegacyTrainRequest, state: AppState = Depends(get_state)) -> JSONResponse:
    return start_training(state, project_id_of(body.project), "label_studio_train")


async def _read_job(state: AppState, job_id: str) -> TrainJob | None:
    """The job as it stands, after failing it if its worker is gone (heartbeat, pid)."""
    job = await run_in_threadpool(state.store.get_job, job_id)
    if job is not None and state.training is not None and await run_in_threadpool(state.training.reap, job):
        job = await run_in_threadpool(state.store.get_job, job_id)
    return job


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
