"""The server's store, run the same way against a real SQLite file and a real mongod."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from backend.store import JobConflict, ModelRecord, StoredPrediction, Store, new_job, open_store


@pytest.fixture(params=["sqlite", "mongodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        spec = str(tmp_path / "store.sqlite3")
    else:
        spec = f"{request.getfixturevalue('mongodb_uri')}/ram_test_{uuid.uuid4().hex[:8]}"
    with open_store(spec) as opened:
        yield opened


def _prediction(task_id: int, version: str, image_path: str | None = None) -> StoredPrediction:
    return StoredPrediction("7", task_id, version, f"/data/upload/7/{task_id}.png",
                            {"tags": [{"label": "Dogs", "value": "Dogs", "score": 0.9}]},
                            [{"index": 0, "name": "dog", "score": 0.9}], image_path)


def test_corrections_join_the_latest_prediction_and_survive_deletion(store: Store) -> None:
    store.record_prediction(_prediction(1, "v1", "/cache/a.png"))
    row = store.record_annotation(annotation_id=10, project="7", task_id=1, image_ref="/data/upload/7/1.png",
                                  final={"tags": ["Cat"]}, final_ram_tags=[{"label": "Cat", "ram_index": 1}],
                                  action="ANNOTATION_CREATED", reviewed_ram=[1, 0, 1])
    assert row.model_version == "v1" and row.image_path == "/cache/a.png" and row.reviewed_ram == [0, 1]
    assert row.predicted["tags"][0]["label"] == "Dogs"
    updated = store.record_annotation(annotation_id=10, project="7", task_id=1, image_ref="/data/upload/7/1.png",
                                      final={"tags": []}, final_ram_tags=[], action="ANNOTATION_UPDATED")
    assert updated.final == {"tags": []} and updated.created_at == row.created_at
    assert updated.model_version == "v1", "an update without a new prediction keeps the joined one"
    assert store.corrections_since("7", row.created_at - 1) == 1
    assert store.mark_deleted(10, "ANNOTATIONS_DELETED") and not store.mark_deleted(99, "ANNOTATIONS_DELETED")
    assert store.corrections(project="7") == []
    (kept,) = store.corrections(project="7", include_deleted=True)
    assert kept.deleted and kept.final == {"tags": []}
    store.set_image_path(10, "/cache/b.png")
    assert store.get(10).image_path == "/cache/b.png"


def test_one_unfinished_job_per_project(store: Store) -> None:
    first = store.create_job(new_job("7", "api", {"epochs": 1}))
    with pytest.raises(JobConflict) as conflict:
        store.create_job(new_job("7", "webhook"))
    assert conflict.value.job.id == first.id
    other = store.create_job(new_job("8", "api"))  # another project is independent
    running = store.update_job(first.id, state="running", pid=123, progress={"epoch": 1})
    assert running.state == "running" and running.pid == 123 and running.updated_at >= first.updated_at
    store.update_job(first.id, state="failed", message="worker killed by SIGKILL")
    second = store.create_job(new_job("7", "api"))  # a finished job frees the project
    assert [j.id for j in store.jobs(project="7")] == [second.id, first.id]
    assert store.get_job(first.id).message == "worker killed by SIGKILL"
    assert {j.id for j in store.jobs()} == {first.id, second.id, other.id}
    assert store.get_job("nope") is None


def test_models_and_project_settings(store: Store) -> None:
    record = ModelRecord("7", "abc", "ram_plus-abc", "/reg/7/abc", {"new": {"micro_f1": 0.8}}, "job1", True,
                         "first version", 1.0)
    store.record_model(record)
    store.record_model(ModelRecord("7", "def", "ram_plus-def", "/reg/7/def", {}, "job2", False, "worse", 2.0))
    assert [m.version for m in store.models("7")] == ["abc", "def"]
    assert store.models("7")[0] == record
    assert store.project_settings("7") == {}
    store.set_project_settings("7", {"manual": {"dog": 0.3}})
    assert store.project_settings("7") == {"manual": {"dog": 0.3}}
