"""Load reviews from Label Studio: the reviewed labels of each sent sample, into a field of its own.

Label Studio is the source of truth: each run reads every task of the project and makes
the output field agree with it. A sample whose latest submitted annotation changed is
rewritten, one whose annotation was deleted (or only skipped) is cleared, and one that
already agrees is left alone, so a rerun writes nothing and a run killed halfway is
completed by the next. Each label remembers the annotation it came from (id and update
time), the reviewer and when the review was made.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.dataset as fod

from plugin.errors import PluginInputError, RunConflictError
from plugin.jobs import JobResult, runs
from plugin.review_round.send_review import latest_round, project_state
from ram_client.labelstudio.client import LabelStudioClient
from ram_client.labelstudio.tasks import Review, read_review
from plugin.review_round.params import LoadReviewsParams
from ram_model.progress import ProgressFn

__all__ = ["LoadResult", "load_reviews"]

_CHUNK = 500


@dataclass
class LoadResult(JobResult):
    output_field: str
    project_id: int
    tasks: int = 0
    reviewed: int = 0
    written: int = 0
    unchanged: int = 0
    cleared: int = 0
    unknown_samples: int = 0
    rounds: dict[str, int] = field(default_factory=dict)
    classes: list[dict[str, object]] = field(default_factory=list)


def load_reviews(collection: foc.SampleCollection, params: LoadReviewsParams, ls: LabelStudioClient, *,
                 progress: ProgressFn | None = None) -> LoadResult:
    """Make `params.output_field` hold the current reviews of every sent sample of the dataset.

    The view only scopes which samples are written; the per-class report covers them.
    """
    dataset = collection._root_dataset
    state = params.state
    if params.project_id is not None:
        project_id = params.project_id  # exported tasks, imported into this project by hand
    else:
        project = project_state(dataset, state)
        if project is None:
            raise PluginInputError(f"No review batch of {params.label_field!r} was sent to Label Studio yet; "
                                   "send one first (or name the project the exported tasks were imported into)")
        if project.get("url") != ls.url:
            raise PluginInputError(f"{params.label_field!r} was sent to the Label Studio at {project.get('url')}, "
                                   f"not {ls.url}")
        project_id = int(project["project_id"])
    _check_output(dataset, params)
    result = LoadResult(params.output_field, project_id)
    tasks = ls.export_tasks(result.project_id)
    result.tasks = len(tasks)
    reviews: dict[str, Review] = {}
    for task in tasks:
        review = read_review(task)
        if review is not None:
            reviews[review.sample_id] = review
    users = ls.users() if reviews else {}

    runs.record_run(dataset, params.run_key, {"label_field": params.label_field, "project_id": result.project_id,
                                              "url": ls.url, "output_field": params.output_field})
    if params.project_id is not None:
        scope = collection  # exported tasks: any sample of the view may have one
    else:
        scope = collection.exists(state.task_field) if dataset.has_sample_field(state.task_field) else None
    ids = scope.values("id") if scope is not None else []
    in_scope = set(ids)
    result.unknown_samples = len(set(reviews) - _dataset_ids(dataset, reviews))
    current = _current(scope, params.output_field) if scope is not None else {}
    writes: dict[str, fo.Classifications | None] = {}
    for sample_id in ids:
        review = reviews.get(sample_id)
        stored = current.get(sample_id)
        if review is None:
            if stored is not None:
                writes[sample_id] = None  # its annotation was deleted or skipped
                result.cleared += 1
            continue
        result.reviewed += 1
        if stored == (review.annotation_id, review.updated_at):
            result.unchanged += 1
            continue
        writes[sample_id] = _label(review, users)
        result.written += 1
    items = list(writes.items())
    for start in range(0, len(items), _CHUNK):
        dataset.set_values(params.output_field, dict(items[start:start + _CHUNK]), key_field="id")
        if progress is not None:
            progress(min(start + _CHUNK, len(items)), len(items))

    considered = [reviews[sid] for sid in ids if sid in reviews and sid in in_scope]
    result.classes = _class_report(considered)
    result.rounds = _update_rounds(dataset, params, reviews)
    return result


def _dataset_ids(dataset: fod.Dataset, reviews: dict[str, Review]) -> set[str]:
    return set(dataset.select(list(reviews)).values("id")) if reviews else set()


def _check_output(dataset: fod.Dataset, params: LoadReviewsParams) -> None:
    ours = runs.read_run_settings(dataset, params.run_key) is not None
    if dataset.has_sample_field(params.output_field) and not ours:
        if not params.overwrite:
            raise RunConflictError(f"Field {params.output_field!r} exists and was not written by Load reviews; "
                                   "choose another output field or enable overwrite")
        dataset.delete_sample_field(params.output_field)


def _current(view: foc.SampleCollection, output_field: str) -> dict[str, tuple[int, str] | None]:
    """Sample id -> (annotation id, update time) of the review stored now (None where unset)."""
    dataset = view._root_dataset
    ids = view.values("id")
    if not dataset.has_sample_field(output_field):
        return dict.fromkeys(ids)
    labels = view.values(output_field)
    out: dict[str, tuple[int, str] | None] = {}
    for sample_id, label in zip(ids, labels):
        if label is None:
            out[sample_id] = None
        else:
            out[sample_id] = (label.get_field("ls_annotation_id") if label.has_field("ls_annotation_id") else None,
                              label.get_field("ls_updated_at") if label.has_field("ls_updated_at") else None)
    return out


def _label(review: Review, users: dict[int, str]) -> fo.Classifications:
    return fo.Classifications(
        classifications=[fo.Classification(label=name) for name in review.labels],
        reviewer=users.get(review.reviewer) if review.reviewer is not None else None,
        reviewed_at=_parse_time(review.updated_at),
        ls_task_id=review.task_id,
        ls_annotation_id=review.annotation_id,
        ls_updated_at=review.updated_at,
        ram_suggested=list(review.suggested or []),
    )


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _class_report(reviews: list[Review]) -> list[dict[str, object]]:
    """Per class: how often RAM's suggestion was accepted, a label added, a suggestion removed."""
    accepted, added, removed = Counter(), Counter(), Counter()
    for review in reviews:
        if review.suggested is None:
            continue
        final, suggested = set(review.labels), set(review.suggested)
        accepted.update(final & suggested)
        added.update(final - suggested)
        removed.update(suggested - final)
    rows = []
    for name in sorted(set(accepted) | set(added) | set(removed)):
        suggested = accepted[name] + removed[name]
        rows.append({"label": name, "accepted": accepted[name], "added": added[name], "removed": removed[name],
                     "acceptance": round(accepted[name] / suggested, 3) if suggested else None})
    return rows


def _update_rounds(dataset: fod.Dataset, params: LoadReviewsParams, reviews: dict[str, Review]) -> dict[str, int]:
    """Record per round how many of its samples are reviewed (send starts a new round once all are)."""
    state = params.state
    per_round = Counter(review.round for review in reviews.values() if review.round is not None)
    latest = latest_round(dataset, state)
    if latest is None:
        return {}
    counts: dict[str, int] = {}
    for number in range(1, latest[0] + 1):
        key = state.round_run(number)
        info: dict[str, Any] | None = runs.read_run_settings(dataset, key)
        if info is None:
            continue
        counts[str(number)] = per_round.get(number, 0)
        if info.get("reviewed") != counts[str(number)]:
            runs.record_run(dataset, key, {**info, "reviewed": counts[str(number)]})
    return counts
