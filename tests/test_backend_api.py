"""Every route of the server through FastAPI's test client (real app, real lifespan,
real tiny engine), including the bad inputs Label Studio and scripts send."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from backend_fixtures import (
    FIRING,
    MULTI_CONFIG,
    SINGLE_CONFIG,
    TAXONOMY_CONFIG,
    FileServer,
    Route,
    image_bytes,
    make_app,
)
from fastapi.testclient import TestClient

from backend.store.sqlite import SQLiteStore as CorrectionsStore
from ram_model import TaggingEngine

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.

TOKEN = "a" * 40


@pytest.fixture
def ls_files(file_server: FileServer) -> FileServer:
    """The local server plays Label Studio's file endpoints: three good uploads, one
    corrupt file, and everything else 404."""
    for i in range(3):
        file_server.routes[f"/data/upload/1/img{i}.png"] = Route(body=image_bytes(i), require_auth=f"Token {TOKEN}")
    file_server.routes["/data/upload/1/corrupt.png"] = Route(body=b"\x89PNG\r\n\x1a\nnot really", require_auth=None)
    return file_server


@pytest.fixture
def client(tmp_path: Path, backend_engine: TaggingEngine, ls_files: FileServer):
    app = make_app(tmp_path, backend_engine, label_studio_url=ls_files.url, label_studio_api_key=TOKEN)
    with TestClient(app) as c:
        yield c


def task(task_id: int, image: str, **extra) -> dict:
    return {"id": task_id, "data": {"image": image}, "project": 1, **extra}


def predict(client: TestClient, tasks: list[dict], config: str = MULTI_CONFIG, **kw):
    return client.post("/predict", json={"tasks": tasks, "project": "1.1700000000", "label_config": config,
                                         "params": {"login": None, "password": None, "context": None}, **kw})


class TestHealthAndSetup:
    def test_health_and_root(self, client: TestClient):
        for path in ("/health", "/"):
            body = client.get(path).json()
            assert body["status"] == "UP" and body["model_class"] == "RamTagger"
            assert body["model_version"].startswith("random-")  # random weights are never disguised

    def test_setup_reports_version_and_unmapped(self, client: TestClient):
        body = client.post("/setup", json={"project": "1.1700000000", "schema": MULTI_CONFIG,
                                           "hostname": "http://127.0.0.1:1", "access_token": TOKEN,
                                           "extra_params": None}).json()
        assert body["model_version"].startswith(client.get("/health").json()["model_version"])
        assert body["controls"] == [{"from_name": "tags", "to_name": "image", "type": "choices",
                                     "labels": 4, "mapped": 3, "unmapped": ["Unicorn"], "open_set": []}]

    def test_setup_with_unservable_config_is_422_with_advice(self, client: TestClient):
        response = client.post("/setup", json={"project": "1.1", "schema": "<View><Text name='t' value='$t'/></View>"})
        assert response.status_code == 422
        assert "no <Image> tag" in response.json()["error"]["message"]


class TestPredict:
    def test_multiple_choices_get_every_tag_over_threshold(self, client: TestClient):
        response = predict(client, [task(1, "/data/upload/1/img0.png"), task(2, "/data/upload/1/img1.png")])
        assert response.status_code == 200
        results = response.json()["results"]
        assert len(results) == 2
        version = client.post("/setup", json={"project": "1.1", "schema": MULTI_CONFIG}).json()["model_version"]
        for prediction in results:
            (item,) = prediction["result"]
            assert item["from_name"] == "tags" and item["to_name"] == "image" and item["type"] == "choices"
            assert set(item["value"]["choices"]) == {"Dogs", "Cat"}
            assert 0.0 < item["score"] <= 1.0 and prediction["score"] == pytest.approx(item["score"])
            assert prediction["model_version"] == version
            assert set(prediction) == {"result", "score", "model_version", "task"}  # what Label Studio keeps

    def test_scores_are_the_engines_probabilities(self, client: TestClient, backend_engine: TaggingEngine):
        (prediction,) = predict(client, [task(1, "/data/upload/1/img2.png")]).json()["results"]
        probs = backend_engine.predict([image_bytes(2)])[0].probs
        vocab = backend_engine.vocab
        expected = np.mean([probs[vocab.index_of("dog")], probs[vocab.index_of("cat")]])
        assert prediction["result"][0]["score"] == pytest.approx(float(expected), rel=1e-5)

    def test_single_choice_gets_the_best_one(self, client: TestClient):
        (prediction,) = predict(client, [task(1, "/data/upload/1/img0.png")], SINGLE_CONFIG).json()["results"]
        assert prediction["result"][0]["value"] == {"choices": ["Pet"]}

    def test_taxonomy_gets_paths(self, client: TestClient):
        (prediction,) = predict(client, [task(1, "/data/upload/1/img0.png")], TAXONOMY_CONFIG).json()["results"]
        (item,) = prediction["result"]
        assert item["type"] == "taxonomy"
        assert sorted(item["value"]["taxonomy"]) == [["Animal", "Cat"], ["Animal", "Dog"]]

    def test_bad_tasks_get_errors_and_the_others_their_predictions(self, client: TestClient):
        tasks = [
            task(1, "/data/upload/1/img0.png"),
            task(2, "/data/upload/1/missing.png"),
            task(3, "/data/upload/1/corrupt.png"),
            task(4, "file:///etc/passwd"),
            task(5, "http://10.0.0.1/internal.png"),
            {"id": 6, "data": {"text": "no image field"}},
            task(7, "/data/upload/1/img1.png"),
        ]
        results = predict(client, tasks).json()["results"]
        assert [r.get("task") for r in results] == [1, 2, 3, 4, 5, 6, 7]
        assert "result" in results[0] and "result" in results[6]
        errors = {r["task"]: r["error"] for r in results if "error" in r}
        assert set(errors) == {2, 3, 4, 5, 6}
        assert "404" in errors[2]
        assert "cannot read the image" in errors[3]
        assert "'file' scheme is not fetched" in errors[4]
        assert "neither Label Studio nor" in errors[5]
        assert "'image'" in errors[6]
        assert all("result" not in r for r in results if "error" in r)

    def test_label_config_from_setup_is_reused(self, client: TestClient):
        client.post("/setup", json={"project": "9.1", "schema": TAXONOMY_CONFIG})
        response = client.post("/predict", json={"tasks": [task(1, "/data/upload/1/img0.png")], "project": "9.1"})
        assert response.json()["results"][0]["result"][0]["type"] == "taxonomy"

    @pytest.mark.parametrize(
        "config, fragment",
        [
            ('<View><Text name="t" value="$t"/></View>', "no <Image> tag"),
            ('<View><Image name="i" value="$image"/></View>', "no <Choices> or <Taxonomy>"),
        ],
    )
    def test_unservable_config_is_422(self, client: TestClient, config: str, fragment: str):
        response = predict(client, [task(1, "/data/upload/1/img0.png")], config)
        assert response.status_code == 422 and fragment in response.json()["error"]["message"]

    @pytest.mark.parametrize(
        "body, status",
        [
            (b"{not json", 400),
            (b"[]", 422),
            (b'{"tasks": "nope"}', 422),
            (b'{"label_config": "<View/>"}', 422),
        ],
    )
    def test_malformed_requests(self, client: TestClient, body: bytes, status: int):
        response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == status
        assert response.json()["error"]["code"] in ("malformed_json", "invalid_request")


    def test_predictions_are_recorded(self, client: TestClient, tmp_path: Path):
        predict(client, [task(42, "/data/upload/1/img0.png")])
        with CorrectionsStore(tmp_path / "model_dir" / "corrections.sqlite3") as store:
            stored = store.latest_prediction("1", 42)
        assert stored is not None and stored.image_ref == "/data/upload/1/img0.png"
        assert {p["label"] for p in stored.predicted["tags"]} == {"Dogs", "Cat"}
        assert {t["name"] for t in stored.ram_tags} == set(FIRING)


class TestWebhook:
    def _annotation(self, annotation_id: int, choices: list[str], task_id: int = 42) -> dict:
        return {"id": annotation_id, "task": task_id, "project": 1, "was_cancelled": False, "result": [
            {"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": choices}}]}

    def test_annotation_lifecycle_is_kept(self, client: TestClient, tmp_path: Path):
        predict(client, [task(42, "/data/upload/1/img0.png")])
        project = {"id": 1, "label_config": MULTI_CONFIG}
        the_task = task(42, "/data/upload/1/img0.png")
        created = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": project,
                                                "annotation": self._annotation(5, ["Cat", "Car"]), "task": the_task})
        assert created.json() == {"status": "ok", "action": "ANNOTATION_CREATED", "stored": 1}
        client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": project,
                                      "annotation": self._annotation(5, ["Car"]), "task": the_task})
        deleted = client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": project,
                                                "annotations": [{"id": 5}]})
        assert deleted.json()["stored"] == 1
        with CorrectionsStore(tmp_path / "model_dir" / "corrections.sqlite3") as store:
            assert store.corrections() == []
            (row,) = store.corrections(include_deleted=True)
        assert row.deleted and row.final == {"tags": ["Car"]} and row.task_id == 42
        assert row.image_ref == "/data/upload/1/img0.png"
        assert {p["label"] for p in row.predicted["tags"]} == {"Dogs", "Cat"}
        assert [(t["label"], t["ram_name"]) for t in row.final_ram_tags] == [("Car", "car")]

    def test_other_events_are_acknowledged(self, client: TestClient):
        body = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1}}).json()
        assert body["status"] == "ignored"

    def test_training_on_a_cpu_server_is_refused_with_the_way_out(self, client: TestClient):
        for response in (client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}}),
                         client.post("/train", json={"project": "1.1700000000", "annotations": []})):
            assert response.status_code == 409
            assert "--allow-cpu-training" in response.json()["error"]["message"]

    def test_webhook_without_action_is_422(self, client: TestClient):
        assert client.post("/webhook", json={"project": {}}).status_code == 422


class TestBasicAuth:
    @pytest.fixture
    def secured(self, tmp_path: Path, backend_engine: TaggingEngine):
        app = make_app(tmp_path, backend_engine, basic_auth_user="ls", basic_auth_pass="s3cret")
        with TestClient(app) as c:
            yield c

    @staticmethod
    def _basic(user: str, password: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    @pytest.mark.parametrize("path", ["/v1/info", "/metrics", "/docs", "/openapi.json"])
    def test_required_and_checked(self, secured: TestClient, path: str):
        assert secured.get(path).status_code == 401
        assert secured.get(path).headers["WWW-Authenticate"].startswith("Basic")
        assert secured.get(path, headers=self._basic("ls", "wrong")).status_code == 401
        assert secured.get(path, headers={"Authorization": "Basic !!!"}).status_code == 401
        assert secured.get(path, headers=self._basic("ls", "s3cret")).status_code == 200

    def test_predict_needs_it_too(self, secured: TestClient):
        assert secured.post("/predict", json={"tasks": []}).status_code == 401


class TestNative:
    def test_info(self, client: TestClient, backend_engine: TaggingEngine):
        body = client.get("/v1/info").json()
        assert body["vocabulary_size"] == len(backend_engine.vocab)
        assert body["variant"] == backend_engine.variant and body["queue_depth"] == 0
        assert body["model_version"] == backend_engine.model_version

    def test_tag_bytes_with_all_scores_and_embedding(self, client: TestClient, backend_engine: TaggingEngine):
        files = [("images", (f"{i}.png", image_bytes(i), "image/png")) for i in range(2)]
        files.append(("images", ("bad.png", b"garbage", "image/png")))
        body = client.post("/v1/tag", files=files, data={"all_scores": "true", "embedding": "true"}).json()
        local = backend_engine.predict([image_bytes(0), image_bytes(1)], with_embedding=True)
        for result, expected in zip(body["results"], local):
            assert result["ok"]
            assert np.array_equal(np.asarray(result["probs"], dtype=np.float32), expected.probs)
            assert np.array_equal(np.asarray(result["embedding"], dtype=np.float32), expected.embedding)
            assert {t["name"] for t in result["tags"]} == set(FIRING)
        assert body["results"][2]["ok"] is False and body["results"][2]["error"]

    def test_tag_defaults_and_overrides(self, client: TestClient):
        files = [("images", ("a.png", image_bytes(0), "image/png"))]
        plain = client.post("/v1/tag", files=files).json()["results"][0]
        assert "probs" not in plain and "embedding" not in plain
        assert len(client.post("/v1/tag", files=files, data={"top_k": "1"}).json()["results"][0]["tags"]) == 1
        assert client.post("/v1/tag", files=files, data={"threshold": "1.0"}).json()["results"][0]["tags"] == []
        assert client.post("/v1/tag", files=files, data={"threshold": "7"}).status_code == 422

    def test_paths_only_under_allowed_roots(self, tmp_path: Path, backend_engine: TaggingEngine):
        root = tmp_path / "images"
        root.mkdir()
        (root / "a.png").write_bytes(image_bytes(0))
        with TestClient(make_app(tmp_path, backend_engine, allowed_roots=[str(root)])) as c:
            body = c.post("/v1/tag", data={"paths": [str(root / "a.png"), "/etc/passwd", str(root / "x.png"),
                                                     str(root / ".." / "images" / "a.png")]}).json()
        ok = [r["ok"] for r in body["results"]]
        assert ok == [True, False, False, True]
        assert "outside the allowed roots" in body["results"][1]["error"]
        with TestClient(make_app(tmp_path, backend_engine)) as c:
            response = c.post("/v1/tag", data={"paths": [str(root / "a.png")]})
        assert response.status_code == 403 and "disabled" in response.json()["error"]["message"]

    def test_empty_and_oversized_requests(self, tmp_path: Path, backend_engine: TaggingEngine):
        with TestClient(make_app(tmp_path, backend_engine, max_upload_images=2)) as c:
            assert c.post("/v1/tag", data={"all_scores": "true"}).status_code == 400
            files = [("images", (f"{i}.png", image_bytes(i), "image/png")) for i in range(3)]
            assert c.post("/v1/tag", files=files).status_code == 413


def test_metrics_count_work(client: TestClient):
    predict(client, [task(1, "/data/upload/1/img0.png"), task(2, "/data/upload/1/missing.png")])
    text = client.get("/metrics").text
    assert "ram_predicted_tasks_total 1" in text and "ram_failed_tasks_total 1" in text
    assert "ram_queue_images 0" in text


def test_openapi_describes_every_route(client: TestClient):
    spec = client.get("/openapi.json").json()
    assert {"/health", "/setup", "/predict", "/webhook", "/metrics", "/v1/tag", "/v1/info"} <= set(spec["paths"])
    json.dumps(spec)


def test_top_k_reaches_label_studio_predictions(tmp_path: Path, backend_engine: TaggingEngine, ls_files: FileServer):
    """`RAM_ANNOTATE_TOP_K` used to reach only the native API; the Label Studio path dropped it."""
    from ram_model import ThresholdPolicy

    app = make_app(tmp_path, backend_engine, policy=ThresholdPolicy(top_k=1),
                   label_studio_url=ls_files.url, label_studio_api_key=TOKEN)
    with TestClient(app) as client:
        (result,) = predict(client, [task(1, "/data/upload/1/img0.png")]).json()["results"]
        both = make_app(tmp_path / "b", backend_engine, label_studio_url=ls_files.url, label_studio_api_key=TOKEN)
        with TestClient(both) as other:
            (unlimited,) = predict(other, [task(1, "/data/upload/1/img0.png")]).json()["results"]
    assert len(result["result"][0]["value"]["choices"]) == 1
    assert len(unlimited["result"][0]["value"]["choices"]) == 2
    assert result["model_version"] != unlimited["model_version"]  # Label Studio re-predicts after a change
