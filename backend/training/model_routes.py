"""Model versions of a project: list, activate (promote), roll back (`/v1/models/{project}/...`)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ..errors import BackendError, BadRequest
from ..state import AppState, get_state
from .params import registry_name
from .routes import NotFound, ProjectId

__all__ = ["router"]

router = APIRouter(tags=["training and versions"])


def _registry(state: AppState):
    try:
        return state.projects.registry()
    except ImportError as exc:
        raise BackendError(f"the model registry is not available: {exc}") from None


@router.get("/v1/models/{project}")
async def project_models(project: ProjectId, state: AppState = Depends(get_state)) -> dict[str, Any]:
    records = await run_in_threadpool(state.store.models, project)
    runtime = await state.projects.runtime(project)
    return {
        "project": project,
        "active": runtime.registry_version,
        "model_version": runtime.engine.model_version,
        "base_model_version": state.engine.model_version,
        "versions": [r.__dict__ for r in records],
        # {version: why it cannot be loaded}: what serves instead is `active` (None: the base model)
        "load_errors": state.projects.load_failures.of(project),
    }


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@router.post("/v1/models/{project}/activate")
async def activate(project: ProjectId, body: ActivateRequest, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Serve a registered version for this project whatever its metrics (an operator's decision)."""
    registry = _registry(state)
    from ram_model.weights.registry import RegistryError

    try:
        result = await run_in_threadpool(registry.promote, registry_name(project), body.version, force=True)
    except RegistryError as exc:
        raise NotFound(str(exc)) from None
    await _set_serve_base(state, project, False)
    runtime = await state.projects.runtime(project)
    return {"project": project, "active": body.version, "reason": result.reason,
            "model_version": runtime.engine.model_version}


@router.post("/v1/models/{project}/rollback")
async def rollback(project: ProjectId, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Go back to the version that was active before the current one; before the first
    fine-tune that is the base model (until a version is activated or promoted again)."""
    registry = _registry(state)
    from ram_model.weights.registry import RegistryError

    if state.projects.active_version(project) is None:
        raise BadRequest(f"project {project} already serves the base model; there is nothing to roll back")
    try:
        previous = await run_in_threadpool(registry.rollback, registry_name(project))
    except RegistryError:
        previous = None
    await _set_serve_base(state, project, previous is None)
    runtime = await state.projects.runtime(project)
    return {"project": project, "active": previous.version if previous else None,
            "model_version": runtime.engine.model_version}


async def _set_serve_base(state: AppState, project: str, serve_base: bool) -> None:
    settings = dict(await run_in_threadpool(state.store.project_settings, project))
    if bool(settings.get("serve_base")) != serve_base:
        settings["serve_base"] = serve_base
        await run_in_threadpool(state.store.set_project_settings, project, settings)
    state.projects.invalidate(project)
