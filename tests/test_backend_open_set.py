"""Label Studio labels that map onto no RAM tag become open-set classes (issue 20).

The app through its HTTP routes, and a real Label Studio retrieving predictions from our
server (the tiny random RAM++ and the tiny random CLIP text encoder)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import numpy as np
import pytest
from backend_fixtures import FileServer, Route, image_bytes, make_app, running_server
from fastapi.testclient import TestClient

from ram_model import TaggingEngine

TOKEN = "c" * 40
LABELS = ("Dogs", "Scratch on the bumper", "Person without helmet")
CONFIG = f"""<View>
  <Image name="image" value="$image"/>
  <Choices name="tags" toName="image" choice="multiple" model_score_threshold="0">
    {''.join(f'<Choice value="{label}"/>' for label in LABELS)}
  </Choices>
</View>"""


@pytest.fixture(scope="module")
def engine(tiny_files, controlled_thresholds, tmp_path_factory) -> TaggingEngine:
    return TaggingEngine.from_config(tiny_files.engine_config(
        thresholds=str(controlled_thresholds), precision="fp32", text_encoder="random:tiny",
        cache_dir=str(tmp_path_factory.mktemp("text-cache"))))


def _expected(engine: TaggingEngine, seeds: range) -> np.ndarray:
    view = engine.open_set_view(["dog", "Scratch on the bumper", "Person without helmet"])
    return view.predict_proba([image_bytes(s) for s in seeds])


def _client(tmp_path: Path, engine: TaggingEngine, file_server: FileServer, **settings) -> TestClient:
    for i in range(2):
        file_server.routes[f"/data/upload/3/o{i}.png"] = Route(body=image_bytes(40 + i))
    app = make_app(tmp_path, engine, label_studio_url=file_server.url, label_studio_api_key=TOKEN, **settings)
    return TestClient(app)


def _predict(client: TestClient) -> list[dict]:
    tasks = [{"id": i + 1, "data": {"image": f"/data/upload/3/o{i}.png"}, "project": 3} for i in range(2)]
    response = client.post("/predict", json={"tasks": tasks, "project": "3.1700000000", "label_config": CONFIG})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_unmapped_labels_are_scored_reported_and_listed(tmp_path, engine, file_server) -> None:
    with _client(tmp_path, engine, file_server) as client:
        setup = client.post("/setup", json={"project": "3.1700000000", "schema": CONFIG}).json()
        (control,) = setup["controls"]
        assert control["open_set"] == ["Scratch on the bumper", "Person without helmet"]
        assert control["unmapped"] == [] and control["mapped"] == 3
        assert "-open" in setup["model_version"]
        results = _predict(client)
        expected = _expected(engine, range(40, 42))
        state = client.app.state.ram
        for i, prediction in enumerate(results):
            (item,) = prediction["result"]
            assert set(item["value"]["choices"]) == set(LABELS)
            stored = state.store.latest_prediction("3", i + 1)
            scores = {c["label"]: c["score"] for c in stored.predicted["tags"]}
            assert [scores[label] for label in LABELS] == pytest.approx(expected[i].tolist(), abs=1e-5)
            assert all(t["name"] in engine.vocab.names for t in stored.ram_tags)  # RAM tags only
        info = client.get("/v1/info").json()
        assert info["open_set_classes"] == ["Scratch on the bumper", "Person without helmet"]


def test_open_set_labels_can_be_turned_off(tmp_path, engine, file_server) -> None:
    with _client(tmp_path, engine, file_server, open_set_labels=False) as client:
        setup = client.post("/setup", json={"project": "3.1700000000", "schema": CONFIG}).json()
        assert setup["controls"][0]["unmapped"] == ["Scratch on the bumper", "Person without helmet"]
        assert setup["controls"][0]["open_set"] == []
        (item,) = _predict(client)[0]["result"]
        assert set(item["value"]["choices"]) == {"Dogs"}


def test_without_a_text_encoder_the_project_is_served_as_before(tmp_path, engine, file_server) -> None:
    offline = dataclasses.replace(engine.config, text_encoder="/nonexistent/clip-folder")
    plain = TaggingEngine.from_config(offline)
    with _client(tmp_path, plain, file_server) as client:
        setup = client.post("/setup", json={"project": "3.1700000000", "schema": CONFIG}).json()
        assert setup["controls"][0]["unmapped"] == ["Scratch on the bumper", "Person without helmet"]
        (item,) = _predict(client)[0]["result"]
        assert set(item["value"]["choices"]) == {"Dogs"}


@pytest.mark.labelstudio
@pytest.mark.slow
def test_a_real_label_studio_project_gets_pre_tags_for_labels_outside_rams_vocabulary(
        label_studio, engine, tmp_path) -> None:
    expected = _expected(engine, range(40, 42))  # also loads the text encoder and caches the embeddings:
    # Label Studio gives /setup a few seconds when the connection is made
    app = make_app(tmp_path, engine)
    with running_server(app) as url, label_studio.client() as ls:
        def ok(response: httpx.Response):
            assert response.status_code < 300, response.text[:300]
            return response.json() if response.content else {}

        project = ok(ls.post("/api/projects", json={"title": "open-set labels", "label_config": CONFIG}))["id"]
        ok(ls.post(f"/api/projects/{project}/import",
                   files=[(f"f{i}", (f"o{i}.png", image_bytes(40 + i), "image/png")) for i in range(2)]))
        ok(ls.post("/api/ml", json={"project": project, "url": url, "title": "RAM", "is_interactive": False}))
        ok(ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
                   json={"selectedItems": {"all": True, "excluded": []}}))
        body = ok(ls.get("/api/tasks", params={"project": project, "page_size": 100}))
        tasks = sorted(body["tasks"] if isinstance(body, dict) else body, key=lambda t: t["id"])
        for i, task in enumerate(tasks):
            (prediction,) = ok(ls.get("/api/predictions", params={"task": task["id"]}))
            (item,) = prediction["result"]
            assert set(item["value"]["choices"]) == set(LABELS)
            assert prediction["score"] == pytest.approx(float(expected[i].mean()), abs=1e-4)


def test_ray_serve_proxy_leaves_unmapped_labels_unpredicted(engine, caplog) -> None:
    """`serve --ray`: the app's engine is a proxy to the replicas, which cannot build open-set views
    yet; the project is bound as without a text encoder (no crash), and the reason is logged."""
    import functools
    import logging

    from backend.labelstudio.open_set_labels import with_open_set_labels
    from backend.labelstudio.project import build_project_model
    from backend.serving.ray_serve import ServeEngine

    proxy = ServeEngine(None, engine.info(), engine.vocab, dataclasses.replace(engine.config, text_encoder="ray-only"))
    assert proxy.open_set_classes == ()
    thresholds = engine.vocab.thresholds
    project = build_project_model(CONFIG, ram_names=engine.vocab.names, ram_names_zh=engine.vocab.names_zh,
                                  ram_thresholds=thresholds, engine_version=proxy.model_version)
    with caplog.at_level(logging.WARNING, logger="backend.labelstudio.open_set_labels"):
        bound = with_open_set_labels(project, proxy, thresholds, functools.partial(build_project_model, CONFIG))
    assert bound is project and bound.open_set_classes == ()
    assert bound.unmapped() == {"tags": ["Scratch on the bumper", "Person without helmet"]}
    assert "not scored through Ray Serve" in caplog.text
