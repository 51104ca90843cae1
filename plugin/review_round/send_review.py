"""Send a review batch to Label Studio: choose the samples, create their tasks, remember them.

The batch comes from `ram_model.review.select_review_batch` (disagreement, uncertainty,
diversity). Images reach Label Studio through its local-files storage when they sit under
its document root (nothing is copied), else they are uploaded a few at a time; each task
carries the sample id, the round and RAM's prediction.

Crash safety and idempotency rest on three records, written in this order:

1. the project run (`ram_ls_<field>`): which Label Studio project this label field uses;
2. the round run (`ram_ls_<field>_r<N>`): the chosen sample ids, *before* anything is sent,
   so a rerun after a crash finishes the same batch instead of choosing another;
3. per sample, the task id (`<field>_ls_task`, the "already sent" mark) after each chunk.

Before importing a chunk, the project's tasks are looked up by `ram_sample_id`, so a task
that was created just before a kill -9 is recorded, not created twice; uploads are named
after the sample id and found again the same way. A finished round is sent again as
nothing; a new round starts once the previous one is reviewed (or when asked).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone.core.collections as foc
import fiftyone.core.dataset as fod
import numpy as np

from plugin.errors import PluginInputError
from plugin.fo_convert import distinct_labels, present_labels, tag_confidences
from plugin.jobs import JobResult, runs
from plugin.jobs.disagreements import label_probabilities
from ram_client.labelstudio.client import LabelStudioClient, LabelStudioError
from ram_client.labelstudio.tasks import (
    ROUND_KEY,
    SAMPLE_ID_KEY,
    SUGGESTION_KEY,
    choices_config,
    config_choices,
    local_files_url,
    ram_prediction,
    suggested_labels,
)
from plugin.params import DisagreementParams, TagParams
from plugin.review_round.params import ReviewStateFields, SendReviewParams
from ram_model.review import build_label_mapping, find_disagreements, load_synonyms, select_review_batch
from ram_model.review.selection import uncertainty_scores
from ram_model.progress import ProgressFn

__all__ = ["SendResult", "latest_round", "project_state", "send_review_batch"]

# Files per upload request: keeps each request far below Label Studio's request-size limit.
_UPLOAD_FILES = 20
_UPLOAD_BYTES = 32 * 1024 * 1024
_TITLE_MAX = 50  # Label Studio's limit
# Which `select_review_batch` argument feeds each signal.
_SIGNAL_INPUT = {"disagreement": "disagreement", "uncertainty": "probs", "diversity": "embeddings"}


@dataclass
class SendResult(JobResult):
    project_id: int
    project_url: str
    round: int
    selected: int = 0
    sent: int = 0
    already_sent: int = 0
    local_files: int = 0
    uploaded: int = 0
    pool: int = 0
    signals: dict[str, float] = field(default_factory=dict)
    diversity_source: str | None = None
    message: str = ""


def project_state(dataset: fod.Dataset, state: ReviewStateFields) -> dict[str, Any] | None:
    return runs.read_run_settings(dataset, state.project_run)


def latest_round(dataset: fod.Dataset, state: ReviewStateFields) -> tuple[int, dict[str, Any]] | None:
    """The highest round number recorded for this label field, with its settings."""
    numbers = [int(key[len(state.round_prefix):]) for key in dataset.list_runs()
               if key.startswith(state.round_prefix) and key[len(state.round_prefix):].isdigit()]
    if not numbers:
        return None
    number = max(numbers)
    return number, runs.read_run_settings(dataset, state.round_run(number)) or {}


def send_review_batch(collection: foc.SampleCollection, params: SendReviewParams, ls: LabelStudioClient, *,
                      document_root: str | None = None, progress: ProgressFn | None = None) -> SendResult:
    """Choose (or resume) this round's batch and make sure every sample of it has a task."""
    if len(collection) == 0:
        raise PluginInputError("The target view has no samples; nothing to send")
    dataset = collection._root_dataset
    state = params.state
    run = runs.read_tag_run(dataset, params.ram_field)
    tag_settings = run.settings
    classes = _classes(dataset, params)
    mapping = build_label_mapping(classes, list(run.vocabulary.names),
                                  synonyms=load_synonyms(params.synonyms) if params.synonyms else None)
    project = _ensure_project(dataset, ls, params, classes, tag_settings.get("model_version"))
    result = SendResult(project_id=project["id"], project_url=f"{ls.url}/projects/{project['id']}", round=0)

    latest = latest_round(dataset, state)
    sample_ids: list[str] | None = None
    if latest is None:
        number = 1
    elif latest[1].get("status") != "sent":
        # A round interrupted while sending: finish the same batch. Without its ids (killed
        # between writing the round's settings and its results) nothing of it was recorded
        # as sent, so choosing again with the same seed gives the same batch.
        number = latest[0]
        sample_ids = list(runs.read_run_results(dataset, state.round_run(number)).get("sample_ids") or []) or None
    elif params.new_round or latest[1].get("reviewed", 0) >= latest[1].get("size", 0):
        number = latest[0] + 1
    else:
        number, info = latest
        result.round = number
        result.already_sent = int(info.get("size", 0))
        result.message = (f"Round {number} is still open ({info.get('reviewed', 0)} of {info.get('size', 0)} "
                          "reviews loaded): load its reviews first, or ask for a new round")
        return result
    if sample_ids is None:
        sample_ids = _select(collection, params, mapping, run, result)
        if not sample_ids:
            result.round = number
            result.message = "Every tagged sample of the view has been sent already"
            return result
        runs.record_run(dataset, state.round_run(number), {
            "round": number, "status": "selected", "size": len(sample_ids), "reviewed": 0,
            "project_id": project["id"], "label_field": params.label_field, "ram_field": params.ram_field,
            "weights": params.weights, "seed": params.seed, "signals": result.signals,
            "diversity_source": result.diversity_source, "created_at": _now(),
        }, results={"sample_ids": sample_ids})
    result.round = number
    result.selected = len(sample_ids)
    _send(dataset, params, ls, project["id"], number, sample_ids, mapping, tag_settings, document_root,
          result, progress)
    info = runs.read_run_settings(dataset, state.round_run(number)) or {}
    runs.record_run(dataset, state.round_run(number), {**info, "status": "sent", "sent_at": _now()})
    result.message = f"Round {number}: {result.selected} samples in Label Studio project {project['id']}"
    return result


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _classes(dataset: fod.Dataset, params: SendReviewParams) -> list[str]:
    present = (distinct_labels(dataset, params.label_field)
               if params.label_field == "tags" or dataset.has_sample_field(params.label_field) else [])
    classes = sorted(set(present) | set(params.classes))
    if not classes:
        raise PluginInputError(f"Label field {params.label_field!r} holds no labels; give the classes to offer")
    return classes


def _ensure_project(dataset: fod.Dataset, ls: LabelStudioClient, params: SendReviewParams, classes: list[str],
                    model_version: str | None) -> dict[str, Any]:
    """The label field's project: the recorded one, else one of the same title, else a new one.

    A project whose choices lack some of today's classes gets its config extended (Label
    Studio keeps existing annotations valid when choices are only added).
    """
    state = params.state
    recorded = project_state(dataset, state)
    title = params.project_title or f"{dataset.name} / {params.label_field}"[:_TITLE_MAX]
    if len(title) > _TITLE_MAX:
        raise PluginInputError(f"Label Studio project titles have at most {_TITLE_MAX} characters: {title!r}")
    project = None
    if recorded and recorded.get("url") == ls.url:
        try:
            project = ls.project(int(recorded["project_id"]))
        except LabelStudioError:
            raise PluginInputError(
                f"Label Studio project {recorded['project_id']} recorded for {params.label_field!r} is gone; "
                f"delete the dataset run {state.project_run!r} to start a new project") from None
    elif recorded and not params.project_title:
        raise PluginInputError(f"{params.label_field!r} was sent to the Label Studio at {recorded.get('url')}, "
                               f"not {ls.url}; give a project title to start a project there")
    if project is None:
        project = next((p for p in ls.projects() if p.get("title") == title), None)
    if project is None:
        project = ls.create_project(title, choices_config(classes), model_version=model_version or "",
                                    description=f"FiftyOne dataset {dataset.name!r}, field {params.label_field!r}; "
                                                "tasks sent by ram-annotate")
    else:
        offered = config_choices(project.get("label_config") or "")
        if not set(classes) <= set(offered):
            project = ls.update_project(project["id"], label_config=choices_config(sorted(set(offered) | set(classes))))
    runs.record_run(dataset, state.project_run, {
        "url": ls.url, "project_id": int(project["id"]), "title": project.get("title"),
        "label_field": params.label_field, "ram_field": params.ram_field,
        "classes": sorted(set(classes) | set(config_choices(project.get("label_config") or ""))),
    })
    return project


def _select(collection: foc.SampleCollection, params: SendReviewParams, mapping, run: runs.TagRun,
            result: SendResult) -> list[str]:
    """Sample ids of the next batch, chosen among the view's tagged samples not sent before."""
    state = params.state
    tagged = collection.exists(params.ram_field)
    if len(tagged) == 0:
        raise PluginInputError(f"No sample of the view has {params.ram_field!r}; run Tag with RAM on it first")
    ids = tagged.values("id")
    dataset = collection._root_dataset
    sent = (tagged.values(state.task_field) if dataset.has_sample_field(state.task_field) else [None] * len(ids))
    exclude = [i for i, task in enumerate(sent) if task is not None]
    result.pool = len(ids) - len(exclude)
    if result.pool == 0:
        return []
    probs, _ = label_probabilities(tagged, DisagreementParams(ram_field=params.ram_field,
                                                              label_field=params.label_field),
                                   mapping, run.settings, list(run.vocabulary.names))
    thresholds = mapping.project_thresholds(run.thresholds)
    inputs: dict[str, Any] = {"probs": probs, "thresholds": thresholds}
    if params.label_field == "tags" or dataset.has_sample_field(params.label_field):
        present = present_labels(tagged, params.label_field)
        labelled = [i for i, names in enumerate(present) if names is not None]
        if labelled:
            label_sets = [{mapping.labels.index(n) for n in present[i] if n in mapping.labels} for i in labelled]
            report = find_disagreements(label_sets, probs[labelled], thresholds=thresholds)
            scores = np.full(len(ids), np.nan)
            scores[labelled] = report.sample_scores
            inputs["disagreement"] = scores
    inputs["embeddings"], result.diversity_source = _embeddings(tagged, params)
    weights = {name: w for name, w in params.weights.items() if w > 0 and inputs.get(_SIGNAL_INPUT[name]) is not None}
    if not weights:
        raise PluginInputError(f"None of the weighted signals is available: {params.weights}")
    result.signals = weights
    picks = select_review_batch(params.batch_size, weights=weights, exclude=exclude,
                                seed=params.seed, **inputs)
    return [ids[i] for i in picks]


def _embeddings(view: foc.SampleCollection, params: SendReviewParams) -> tuple[np.ndarray, str]:
    """Image embeddings for diversity: a vector field if one is named, else RAM's tag confidences.

    Tag confidences (over the tags that occur in the view) place images by what RAM sees in
    them: coarser than an image embedding, but free, as they are already stored.
    """
    if params.embeddings_field:
        values = view.values(params.embeddings_field)
        width = next((len(v) for v in values if v is not None), 0)
        if not width:
            raise PluginInputError(f"Embeddings field {params.embeddings_field!r} holds no vectors")
        return np.stack([np.asarray(v, dtype=np.float32) if v is not None else np.zeros(width, np.float32)
                         for v in values]), params.embeddings_field
    confidences = tag_confidences(view, params.ram_field)
    columns = sorted({name for c in confidences if c for name in c})
    index = {name: i for i, name in enumerate(columns)}
    vectors = np.zeros((len(confidences), max(len(columns), 1)), dtype=np.float32)
    for row, c in enumerate(confidences):
        for name, value in (c or {}).items():
            vectors[row, index[name]] = value
    return vectors, f"{params.ram_field} tag confidences"


def _send(dataset: fod.Dataset, params: SendReviewParams, ls: LabelStudioClient, project_id: int, number: int,
          sample_ids: list[str], mapping, tag_settings: dict[str, Any], document_root: str | None,
          result: SendResult, progress: ProgressFn | None) -> None:
    state = params.state
    view = dataset.select(sample_ids, ordered=True)
    found = set(view.values("id"))
    missing = [sid for sid in sample_ids if sid not in found]
    if missing:
        raise PluginInputError(f"Round {number} holds {len(missing)} samples that are no longer in the dataset "
                               f"(e.g. {missing[:3]}); delete the run {state.round_run(number)!r} to choose anew")
    ids, paths = view.values(["id", "filepath"])
    recorded = (view.values(state.task_field) if dataset.has_sample_field(state.task_field) else [None] * len(ids))
    probs, _ = label_probabilities(view, DisagreementParams(ram_field=params.ram_field,
                                                            label_field=params.label_field),
                                   mapping, tag_settings, list(mapping.ram_names))
    thresholds = mapping.project_thresholds(np.asarray(runs.read_run_results(
        dataset, TagParams(field=params.ram_field).run_key)["thresholds"]))
    uncertainty = uncertainty_scores(probs, thresholds=thresholds)
    confidences = tag_confidences(view, params.ram_field)
    existing = {str(task["data"].get(SAMPLE_ID_KEY)): int(task["id"])
                for task in ls.tasks(project_id, fields="task_only") if (task.get("data") or {}).get(SAMPLE_ID_KEY)}
    storages = [s.get("path", "") for s in ls.local_storages(project_id)]
    uploads: dict[str, str] | None = None
    model_version = tag_settings.get("model_version")
    done = 0
    if progress is not None:
        progress(0, len(ids))
    for start in range(0, len(ids), params.chunk_size):
        chunk = range(start, min(start + params.chunk_size, len(ids)))
        task_ids: dict[str, int] = {}
        to_create: list[int] = []
        for row in chunk:
            if recorded[row] is not None:
                result.already_sent += 1
            elif ids[row] in existing:
                task_ids[ids[row]] = existing[ids[row]]  # created before a crash, not yet recorded
            else:
                to_create.append(row)
        images: dict[int, str] = {}
        to_upload = []
        for row in to_create:
            url = local_files_url(paths[row], document_root) if document_root else None
            if url is None:
                to_upload.append(row)
                continue
            _ensure_storage(ls, project_id, os.path.dirname(os.path.realpath(paths[row])), storages, document_root)
            images[row] = url
            result.local_files += 1
        if to_upload:
            if uploads is None:
                uploads = _uploaded_files(ls, project_id)
            images.update(_upload(ls, project_id, [(row, ids[row], paths[row]) for row in to_upload], uploads, result))
        tasks = []
        for row in to_create:
            prediction = ram_prediction(confidences[row], mapping, model_version,
                                        score=round(1.0 - float(uncertainty[row]), 4))
            tasks.append({
                "data": {"image": images[row], SAMPLE_ID_KEY: ids[row], ROUND_KEY: number,
                         SUGGESTION_KEY: suggested_labels(prediction),
                         "ram_uncertainty": round(float(uncertainty[row]), 4), "ram_dataset": dataset.name},
                "predictions": prediction,
            })
        if tasks:
            for row, task_id in zip(to_create, ls.import_tasks(project_id, tasks)):
                task_ids[ids[row]] = task_id
            result.sent += len(tasks)
        if task_ids:
            dataset.set_values(state.round_field, {sid: number for sid in task_ids}, key_field="id")
            dataset.set_values(state.task_field, task_ids, key_field="id")
        done += len(chunk)
        if progress is not None:
            progress(done, len(ids))


def _ensure_storage(ls: LabelStudioClient, project_id: int, folder: str, storages: list[str],
                    document_root: str) -> None:
    """Label Studio serves a local file only under a storage path of a project the user may see."""
    if any(folder == path or folder.startswith(path.rstrip("/") + "/") for path in storages if path):
        return
    created = ls.add_local_storage(project_id, folder, title=f"ram-annotate {Path(folder).name}")
    storages.append(created.get("path", folder))


def _upload_name(sample_id: str, path: str) -> str:
    return f"{sample_id}{Path(path).suffix.lower()}"


def _uploaded_files(ls: LabelStudioClient, project_id: int) -> dict[str, str]:
    """Upload name -> URL of the files already in the project (Label Studio prefixes a random id)."""
    found = {}
    for upload in ls.file_uploads(project_id):
        stored = str(upload.get("file") or "")
        name = Path(stored).name.split("-", 1)[-1]
        found[name] = "/data/" + stored.lstrip("/")
    return found


def _upload(ls: LabelStudioClient, project_id: int, items: list[tuple[int, str, str]], uploads: dict[str, str],
            result: SendResult) -> dict[int, str]:
    """Upload the images that Label Studio cannot read from disk, a few per request."""
    urls: dict[int, str] = {}
    pending: list[tuple[int, str, str]] = []
    for row, sample_id, path in items:
        name = _upload_name(sample_id, path)
        if name in uploads:
            urls[row] = uploads[name]
        elif not os.path.isfile(path):
            raise PluginInputError(f"Image {path} of sample {sample_id} does not exist; nothing was sent for it")
        else:
            pending.append((row, name, path))
    for batch in _upload_batches(pending):
        ls.upload_files(project_id, [(name, Path(path)) for _, name, path in batch])
        uploads.update(_uploaded_files(ls, project_id))
        for row, name, _ in batch:
            if name not in uploads:
                raise LabelStudioError(f"Label Studio accepted {name} but does not list it among the uploads")
            urls[row] = uploads[name]
        result.uploaded += len(batch)
    return urls


def _upload_batches(items: list[tuple[int, str, str]]) -> list[list[tuple[int, str, str]]]:
    """Split uploads by count and bytes, so no request nears Label Studio's size limit."""
    batches: list[list[tuple[int, str, str]]] = []
    batch: list[tuple[int, str, str]] = []
    size = 0
    for item in items:
        file_size = os.path.getsize(item[2])
        if batch and (len(batch) >= _UPLOAD_FILES or size + file_size > _UPLOAD_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append(item)
        size += file_size
    if batch:
        batches.append(batch)
    return batches
