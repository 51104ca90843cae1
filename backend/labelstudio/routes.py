"""Label Studio's ML-backend protocol (v2): /health, /setup, /predict, /webhook, /metrics."""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
from fastapi import APIRouter, BackgroundTasks, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from ram_client.labelstudio.results import prediction_score

from ..errors import BackendError, BadRequest, PayloadTooLarge
from ..serving.image_cache import cache_image
from .project import ProjectModel
from .config import ControlSpec
from .results import ChosenLabel, predict_task
from .schema import (
    HealthResponse,
    PredictRequest,
    PredictResponse,
    SetupRequest,
    SetupResponse,
    TaskPrediction,
    WebhookRequest,
    WebhookResponse,
    project_id_of,
)
from .webhook import (
    DELETE_ACTIONS,
    STORE_ACTIONS,
    deleted_annotation_ids,
    store_annotations,
)
from .tasks import check_task, task_id_hint
from ..serving.media import redact_url
from ..serving.predict_stream import ImageJob, predict_images
from ..serving.projects import ServedProject
from ..training.routes import start_training
from ..state import AppState, get_state
from ..store import StoredPrediction

__all__ = ["router"]

_log = logging.getLogger("backend.labelstudio.routes")
router = APIRouter(tags=["Label Studio ML backend"])
_MODEL_CLASS = "RamTagger"


def _health(state: AppState) -> HealthResponse:
    return HealthResponse(
        status="UP",
        model_class=_MODEL_CLASS,
        model_version=state.engine.model_version,
        variant=state.engine.variant,
        device=str(state.engine.device),
    )


@router.get("/health", response_model=HealthResponse)
async def health(state: AppState = Depends(get_state)) -> HealthResponse:
    return _health(state)


@router.get("/", response_model=HealthResponse, include_in_schema=False)
async def root(state: AppState = Depends(get_state)) -> HealthResponse:
    return _health(state)


@router.post("/setup", response_model=SetupResponse)
async def setup(body: SetupRequest, state: AppState = Depends(get_state)) -> SetupResponse:
    """Label Studio calls this when the backend is connected and before predicting; the
    answer's model_version decides whether stored predictions are still current."""
    project_id = project_id_of(body.project)
    if body.hostname and not state.settings.label_studio_url:
        _log.info("project %s: using Label Studio at %s (from /setup)", project_id, redact_url(body.hostname))
    try:
        state.projects.remember_setup(project_id, body.hostname, body.access_token)
    except BackendError as exc:
        raise BadRequest(f"/setup hostname: {exc.message}") from None
    project = (await state.projects.serve(project_id, body.label_config)).model
    return SetupResponse(model_version=project.model_version,
                         controls=[c.report() for c in project.controls] + [r.report() for r in project.regions])


def _image_refs(project: ProjectModel, task: dict[str, Any]) -> dict[str, str]:
    data = task.get("data")
    if not isinstance(data, dict):
        raise BackendError("the task has no `data` object")
    refs: dict[str, str] = {}
    for key in [c.spec.data_key for c in project.controls] + [r.data_key for r in project.regions]:
        value = data.get(key)
        if value is None:
            raise BackendError(f"task data has no {key!r} field (the <Image> reads ${key})")
        if not isinstance(value, str):
            raise BackendError(f"task data field {key!r} must be one image URL, got {type(value).__name__}")
        refs[key] = value
    return refs


async def _regions(state: AppState, served: ServedProject, refs_by_task: dict[int, dict[str, str]],
                   cached: dict[Any, str], errors: dict[int, str]) -> dict[int, list[dict[str, Any]]]:
    """Region results per task position when the config has region controls and the server runs a
    detector, or has evidence boxes on (RectangleLabels from RAM's attention: labelstudio.evidence).
    They are computed on the images as fetched for RAM (`cached`), so nothing is fetched twice."""
    project, runtime = served.model, served.runtime
    images = {pos: {k: cached[(pos, k)] for k in refs if (pos, k) in cached}
              for pos, refs in refs_by_task.items() if pos not in errors}
    if not project.regions or not images:
        return {}
    out: dict[int, list[dict[str, Any]]] = {}
    if state.grounding is not None:
        from .regions import predict_regions

        out = await run_in_threadpool(predict_regions, state.grounding, project.regions, images)
    if state.settings.evidence_boxes:
        from .evidence import predict_evidence_regions

        extra = await run_in_threadpool(predict_evidence_regions, runtime.engine, project.regions, images,
                                        state.policy, runtime.ram_thresholds)
        for pos, items in extra.items():
            out.setdefault(pos, []).extend(items)
    return out


@router.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)
async def predict(
    body: PredictRequest, background: BackgroundTasks, state: AppState = Depends(get_state)
) -> PredictResponse:
    """One prediction per task, in order. The images go to the model in batch-sized
    chunks (`predict_stream`), so memory grows with the batch size, not the request.
    A task that is malformed, or whose image cannot be fetched or decoded, gets `error`
    and no `result`, and the others are unaffected."""
    state.counters.predict_requests += 1
    limit = state.settings.max_predict_tasks
    if len(body.tasks) > limit:
        raise PayloadTooLarge(
            f"{len(body.tasks)} tasks in one /predict request; the limit is {limit} (--max-predict-tasks, "
            "RAM_ANNOTATE_MAX_PREDICT_TASKS): select fewer tasks at a time"
        )
    project_id = project_id_of(body.project)
    served = await state.projects.serve(project_id, body.label_config)
    errors: dict[int, str] = {}
    tasks, refs_by_task, jobs = _parse_tasks(served.model, body.tasks, errors)
    probs_of, cached = await _predict(state, served, jobs, refs_by_task, project_id, errors)
    regions = await _regions(state, served, refs_by_task, cached, errors)
    results, stored = _build_results(state, served, body.tasks, tasks, refs_by_task, probs_of, cached, project_id,
                                     errors, regions)
    if stored:
        await run_in_threadpool(lambda: [state.store.record_prediction(s) for s in stored])
        background.add_task(state.version_sync.sync, state.projects.label_studio(project_id), project_id,
                            served.model.model_version)
    state.counters.predicted_tasks += len(body.tasks) - len(errors)
    state.counters.failed_tasks += len(errors)
    return PredictResponse(results=results)


def _parse_tasks(project: ProjectModel, raw_tasks: list[Any], errors: dict[int, str]
                 ) -> tuple[list[dict[str, Any] | None], dict[int, dict[str, str]], list[ImageJob]]:
    """Each task checked on its own: a malformed one gets its error in `errors` and None."""
    tasks: list[dict[str, Any] | None] = []
    refs_by_task: dict[int, dict[str, str]] = {}
    jobs: list[ImageJob] = []
    for pos, raw in enumerate(raw_tasks):
        try:
            task = check_task(raw)
            refs = _image_refs(project, task)
        except ValueError as exc:
            errors[pos] = str(exc)
            tasks.append(None)
            continue
        except BackendError as exc:
            errors[pos] = exc.message
            tasks.append(None)
            continue
        tasks.append(task)
        refs_by_task[pos] = refs
        jobs.extend(ImageJob((pos, key), ref, task.get("id")) for key, ref in refs.items())
    return tasks, refs_by_task, jobs


async def _predict(state: AppState, served: ServedProject, jobs: list[ImageJob],
                   refs_by_task: dict[int, dict[str, str]], project_id: str | None, errors: dict[int, str]
                   ) -> tuple[Callable[[int], dict[str, np.ndarray]], dict[Any, str]]:
    """A task's (K,) probabilities per image key, on demand; a failed image's error goes to `errors`."""
    cached: dict[Any, str] = {}  # slot -> the image as fetched, kept under MODEL_DIR/images for training

    def keep(slot: Any, data: bytes) -> None:
        cached[slot] = str(cache_image(state.settings.image_cache_dir, data))

    # Only the RAM classes the project's labels map onto are computed (the same scores as the
    # full model's); `expand` puts them back at their vocabulary index, NaN elsewhere.
    view = await state.projects.computing(served.runtime, served.model.ram_classes,
                                           served.model.open_set_classes)
    outcomes = await predict_images(state.fetcher, view.batcher, jobs, state.projects.label_studio(project_id),
                                    chunk_size=view.batcher.max_batch_size, on_image=keep)
    for job in jobs:
        pos, _ = job.slot
        if isinstance(outcome := outcomes[job.slot], str):
            errors.setdefault(pos, outcome)

    def probs_of(pos: int) -> dict[str, np.ndarray]:
        """One task's (K,) vectors, expanded when it is answered: a 10,000-task request
        never holds 10,000 full-vocabulary vectors at once."""
        return {key: view.expand(outcomes[(pos, key)]) for key in refs_by_task[pos]}

    return probs_of, cached


def _stored_choices(spec: ControlSpec, chosen: list[ChosenLabel]) -> list[dict[str, Any]]:
    """What the store keeps of a control's chosen labels; a Taxonomy's also keep their path,
    so an export can write the prediction back as Label Studio stores it."""
    rows = []
    for c in chosen:
        row: dict[str, Any] = {"label": c.label, "value": c.value, "score": c.score}
        if spec.kind == "taxonomy":
            row["path"] = list(spec.paths[c.entry])
        rows.append(row)
    return rows


def _build_results(state: AppState, served: ServedProject, raw_tasks: list[Any], tasks: list[dict[str, Any] | None],
                   refs_by_task: dict[int, dict[str, str]], probs_of: Callable[[int], dict[str, np.ndarray]],
                   cached: dict[Any, str], project_id: str | None, errors: dict[int, str],
                   regions: dict[int, list[dict[str, Any]]],
                   ) -> tuple[list[TaskPrediction], list[StoredPrediction]]:
    """One answer per task, in order (Choices results, then `regions`'), and what the store keeps
    of the successful ones (Choices only: a region-only config stores nothing)."""
    project, runtime = served.model, served.runtime
    version = project.model_version
    specs = {control.spec.name: control.spec for control in project.controls}
    results: list[TaskPrediction] = []
    stored: list[StoredPrediction] = []
    for pos, task in enumerate(tasks):
        task_id = task.get("id") if task is not None else task_id_hint(raw_tasks[pos])
        if pos in errors or task is None:
            _log.warning("task %s: %s", task_id, errors[pos])
            results.append(TaskPrediction(model_version=version, task=task_id, error=errors[pos]))
            continue
        task_probs = probs_of(pos)
        outcome = predict_task(project, task_probs)
        results.append(
            TaskPrediction(
                result=outcome.result + regions.get(pos, []),
                score=outcome.score if outcome.score is not None else prediction_score(regions.get(pos, [])),
                model_version=version,
                task=task_id,
            )
        )
        if task_id is not None and project_id is not None and project.controls:
            first_key = project.controls[0].spec.data_key
            ram_probs = task_probs[first_key][:len(runtime.engine.vocab)]  # RAM's own tags, not open-set ones
            tags = state.policy.select(ram_probs, runtime.engine.vocab, runtime.ram_thresholds)
            stored.append(
                StoredPrediction(
                    project=project_id,
                    task_id=task_id,
                    model_version=version,
                    image_ref=refs_by_task[pos][first_key],
                    predicted={name: _stored_choices(specs[name], chosen) for name, chosen in outcome.chosen.items()},
                    ram_tags=[{"index": t.index, "name": t.name, "score": t.score} for t in tags],
                    image_path=cached.get((pos, first_key)),
                )
            )
    return results, stored


@router.post("/webhook", response_model=WebhookResponse, response_model_exclude_none=True)
async def webhook(body: WebhookRequest, state: AppState = Depends(get_state)) -> WebhookResponse | JSONResponse:
    """Annotation events from a Label Studio webhook pointed here; every annotation is
    kept in the corrections store. START_TRAINING (Label Studio's "Start Training")
    queues a fine-tune job from the stored corrections; its payload carries no
    annotation. Other events (project updates, ...) are acknowledged and ignored."""
    state.counters.webhooks += 1
    project_id = project_id_of(body.project.id) if body.project else None
    if body.action == "START_TRAINING":
        return start_training(state, project_id, "label_studio_start_training")
    if body.action in STORE_ACTIONS:
        stored = await run_in_threadpool(store_annotations, state.projects, state.store, state.engine.vocab.names, body)
        state.counters.corrections_stored += stored
        if stored and project_id and state.training is not None and state.settings.train_every:
            state.training.note_annotations(project_id, ls_access=state.projects.label_studio(project_id),
                                            fetcher=state.fetcher)
        return WebhookResponse(status="ok", action=body.action, stored=stored)
    if body.action in DELETE_ACTIONS:
        marked = 0
        for annotation_id in deleted_annotation_ids(body):
            marked += await run_in_threadpool(state.store.mark_deleted, annotation_id, body.action)
        return WebhookResponse(status="ok", action=body.action, stored=marked, detail="marked deleted, kept")
    return WebhookResponse(status="ignored", action=body.action, detail="this backend does not act on this event")


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(state: AppState = Depends(get_state)) -> str:
    """Prometheus text exposition of queue and request counters."""
    b = state.batcher.stats
    c = state.counters
    rows = [
        ("ram_queue_images", "gauge", state.batcher.pending_images),
        ("ram_batches_total", "counter", b.batches),
        ("ram_batch_images_total", "counter", b.images),
        ("ram_batch_largest", "gauge", b.largest_batch),
        ("ram_batch_busy_seconds_total", "counter", round(b.busy_seconds, 6)),
        ("ram_rejected_requests_total", "counter", b.rejected),
        ("ram_predict_requests_total", "counter", c.predict_requests),
        ("ram_predicted_tasks_total", "counter", c.predicted_tasks),
        ("ram_failed_tasks_total", "counter", c.failed_tasks),
        ("ram_native_requests_total", "counter", c.native_requests),
        ("ram_native_images_total", "counter", c.native_images),
        ("ram_webhooks_total", "counter", c.webhooks),
        ("ram_corrections_stored_total", "counter", c.corrections_stored),
    ]
    lines = []
    for name, kind, value in rows:
        lines += [f"# TYPE {name} {kind}", f"{name} {value}"]
    return "\n".join(lines) + "\n"
