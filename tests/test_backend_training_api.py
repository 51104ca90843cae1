"""Per-project thresholds, the corrections export and job bookkeeping, through the real
app (FastAPI's test client), a real store and the tiny engine; no training here (that
runs against a real Label Studio in test_backend_ls_training.py)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from backend_fixtures import SHAPES_CONFIG, SHAPES_LABEL, FileServer, Route, make_app
from fastapi.testclient import TestClient
from synthetic_shapes import shape_dataset

from backend.training.cli import register
from backend.store import new_job, open_store
from ram_model import TaggingEngine
from ram_model.review import read_finetune_json
from ram_model.weights.testing import TINY_TAGS

TOKEN = "b" * 40
DATA = shape_dataset(10, seed=3)


@pytest.fixture
def served(tmp_path: Path, backend_engine: TaggingEngine, file_server: FileServer):
    for i, (png, _) in enumerate(DATA):
        file_server.routes[f"/data/upload/5/s{i}.png"] = Route(body=png, require_auth=f"Token {TOKEN}")
    app = make_app(tmp_path, backend_engine, label_studio_url=file_server.url, label_studio_api_key=TOKEN)
    with TestClient(app) as client:
        yield client, tmp_path / "model_dir"


def _task(i: int) -> dict:
    return {"id": 100 + i, "data": {"image": f"/data/upload/5/s{i}.png"}, "project": 5}


def _predict(client: TestClient, tasks: list[dict], config: str = SHAPES_CONFIG) -> dict:
    response = client.post("/predict", json={"tasks": tasks, "project": "5.1700000000", "label_config": config})
    assert response.status_code == 200, response.text
    return response.json()


def _setup_version(client: TestClient, config: str = SHAPES_CONFIG) -> str:
    return client.post("/setup", json={"project": "5.1700000000", "schema": config}).json()["model_version"]


def _annotate_all(client: TestClient) -> None:
    _predict(client, [_task(i) for i in range(len(DATA))])
    for i, (_, tags) in enumerate(DATA):
        result = [{"from_name": "tags", "to_name": "image", "type": "choices",
                   "value": {"choices": sorted(SHAPES_LABEL[t] for t in tags)}}]
        response = client.post("/webhook", json={
            "action": "ANNOTATION_CREATED", "project": {"id": 5, "label_config": SHAPES_CONFIG}, "task": _task(i),
            "annotation": {"id": 500 + i, "task": 100 + i, "result": result, "was_cancelled": False}})
        assert response.json()["stored"] == 1


def test_manual_thresholds_change_predictions_and_model_version(served):
    client, _ = served
    before = _setup_version(client)
    (first,) = _predict(client, [_task(0)])["results"]
    assert set(first["result"][0]["value"]["choices"]) == {"Dogs", "Cat"}  # the controlled thresholds fire both

    body = client.put("/v1/projects/5/thresholds", json={"manual": {"dog": 0.9999}}).json()
    assert body["manual"] == {"dog": 0.9999} and body["effective"] == {"dog": pytest.approx(0.9999)}
    after = _setup_version(client)
    assert after != before, "the project's thresholds enter its model_version"
    (second,) = _predict(client, [_task(0)])["results"]
    assert second["result"][0]["value"]["choices"] == ["Cat"] and second["model_version"] == after
    # Another project keeps RAM's thresholds.
    other = client.post("/setup", json={"project": "6.1", "schema": SHAPES_CONFIG}).json()["model_version"]
    assert other == before

    # A control's model_score_threshold wins over the manual one.
    forced = SHAPES_CONFIG.replace('choice="multiple"', 'choice="multiple" model_score_threshold="0.0"')
    (third,) = _predict(client, [_task(0)], config=forced)["results"]
    assert set(third["result"][0]["value"]["choices"]) == {"Dogs", "Cat", "Car"}

    bad = client.put("/v1/projects/5/thresholds", json={"manual": {"unicorn": 0.5}})
    assert bad.status_code == 400 and "unicorn" in bad.json()["error"]["message"]
    assert client.put("/v1/projects/5/thresholds", json={"manual": {"dog": 1.5}}).status_code == 400
    client.put("/v1/projects/5/thresholds", json={"manual": {}})
    assert _setup_version(client) == before


def test_thresholds_tuned_from_the_project_corrections(served):
    client, _ = served
    _annotate_all(client)
    before = _setup_version(client)
    response = client.post("/v1/projects/5/thresholds/tune", json={"min_count": 2, "shrink": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    report = {c["name"]: c for c in body["tuned_report"]["classes"]}
    assert set(report) == {"dog", "cat", "car"}  # the project's reviewed classes, nothing else
    positives = {t: sum(t in tags for _, tags in DATA) for t in ("dog", "cat", "car")}
    assert {name: c["positives"] for name, c in report.items()} == positives
    assert set(body["tuned"]) <= {"dog", "cat", "car"} and body["tuned"]
    assert _setup_version(client) != before
    assert client.get("/v1/projects/5/thresholds").json()["tuned"] == body["tuned"]
    nothing = client.post("/v1/projects/77/thresholds/tune")
    assert nothing.status_code == 400 and "no corrections" in nothing.json()["error"]["message"]


def _export(args: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(args)
    return parsed.func(parsed)


def test_corrections_export_in_three_formats(served, tmp_path: Path, capsys: pytest.CaptureFixture):
    client, model_dir = served
    _annotate_all(client)
    out = tmp_path / "out"
    out.mkdir()
    assert _export(["corrections", "export", "--project", "5", "--model-dir", str(model_dir), str(out / "ram.json")]) == 0
    records = read_finetune_json(out / "ram.json", num_classes=len(TINY_TAGS), image_root=model_dir / "images")
    labelled = [tags for _, tags in DATA if tags]
    assert len(records) == len(DATA) == len(labelled)
    for record, (_, tags) in zip(records, DATA):
        assert {TINY_TAGS[i] for i in record.union_label_id} == set(tags)
    raw = json.loads((out / "ram.json").read_text())
    assert all(set(e["reviewed_label_id"]) == {TINY_TAGS.index(t) for t in ("dog", "cat", "car")} for e in raw)
    # The images are the bytes the server fetched, so training never asks Label Studio again.
    assert (model_dir / "images" / records[0].image_path).read_bytes() == DATA[0][0]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["exported"] == len(DATA) and summary["skipped"] == []

    assert _export(["corrections", "export", "--project", "5", "--format", "labelstudio",
                    "--model-dir", str(model_dir), str(out / "ls.json")]) == 0
    tasks = json.loads((out / "ls.json").read_text())
    assert len(tasks) == len(DATA) and tasks[0]["data"]["image"] == "/data/upload/5/s0.png"
    assert tasks[0]["annotations"][0]["result"][0]["value"]["choices"] == sorted(SHAPES_LABEL[t] for t in DATA[0][1])
    assert _export(["corrections", "export", "--project", "5", "--format", "fiftyone",
                    "--model-dir", str(model_dir), str(out / "fo.json")]) == 0
    samples = json.loads((out / "fo.json").read_text())
    assert len(samples) == len(DATA) and Path(samples[0]["filepath"]).is_file()
    assert _export(["corrections", "export", "--project", "404", "--model-dir", str(model_dir),
                    str(out / "none.json")]) == 1


def test_jobs_of_a_dead_server_end_failed_and_the_job_api_reads_them(tmp_path: Path, backend_engine: TaggingEngine):
    model_dir = tmp_path / "model_dir"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open_store(model_dir / "corrections.sqlite3") as store:
        job = store.create_job(new_job("9", "api"))
        store.update_job(job.id, state="running", pid=dead.pid)
    with TestClient(make_app(tmp_path, backend_engine)) as client:
        body = client.get(f"/v1/train/jobs/{job.id}").json()
        assert body["state"] == "failed" and "server stopped" in body["message"]
        assert [j["id"] for j in client.get("/v1/train/jobs", params={"project": "9"}).json()["jobs"]] == [job.id]
        assert client.get("/v1/train/jobs/abc123").status_code == 404
        assert client.get("/v1/train/jobs/..%2f..").status_code in (404, 422)
        assert client.post("/job_status", json={"job": job.id}).json()["job_status"] == "failed"
        assert client.post("/job_status", json={"job": "nope"}).status_code == 410


def test_each_chosen_label_gets_its_own_score_in_a_ram_scores_text_area(served):
    client, _ = served
    config = SHAPES_CONFIG.replace("</View>",
                                   '  <TextArea name="ram_scores" toName="image" editable="false"/>\n</View>')
    plain = _setup_version(client)
    assert _setup_version(client, config) != plain
    (prediction,) = _predict(client, [_task(1)], config=config)["results"]
    choices, text = prediction["result"]
    assert choices["type"] == "choices" and text == {
        "from_name": "ram_scores", "to_name": "image", "type": "textarea", "value": {"text": text["value"]["text"]}}
    names = [line.rsplit(" ", 1)[0] for line in text["value"]["text"]]
    scores = [float(line.rsplit(" ", 1)[1]) for line in text["value"]["text"]]
    assert names == choices["value"]["choices"] and scores == sorted(scores, reverse=True)
    assert prediction["score"] == pytest.approx(choices["score"])
    assert abs(sum(scores) / len(scores) - choices["score"]) < 0.01


def test_train_every_n_annotations_starts_a_job_and_shutdown_ends_it(tmp_path: Path, backend_engine: TaggingEngine,
                                                                      file_server: FileServer):
    for i, (png, _) in enumerate(DATA):
        file_server.routes[f"/data/upload/5/s{i}.png"] = Route(body=png, require_auth=f"Token {TOKEN}")
    app = make_app(tmp_path, backend_engine, label_studio_url=file_server.url, label_studio_api_key=TOKEN,
                   allow_cpu_training=True, train_every=4, train_min_corrections=6)
    with TestClient(app) as client:
        _annotate_all(client)  # 10 annotations: at the 6th (4 new, 6 in all) a job starts, at the 10th it is running
        jobs = client.get("/v1/train/jobs", params={"project": "5"}).json()["jobs"]
        assert len(jobs) == 1 and jobs[0]["trigger"] == "train_every", jobs
        job_id = jobs[0]["id"]
    with open_store(tmp_path / "model_dir" / "corrections.sqlite3") as store:
        job = store.get_job(job_id)
    assert job.state in ("failed", "promoted", "rejected"), "a server that stops leaves no job hanging"
    if job.state == "failed":
        assert "server stopped" in job.message or "worker" in job.message
