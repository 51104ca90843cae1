"""Label Studio projects are served by an engine computing only the RAM classes their labels
map onto (issue 13): the same scores as the full model, and the full engine for projects
that need most of the vocabulary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from backend_fixtures import FileServer, Route, image_bytes, make_app
from fastapi.testclient import TestClient

from ram_model import TaggingEngine
from ram_model.model.restrict import FULL_VOCABULARY_SHARE
from ram_model.weights.testing import TINY_TAGS

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.

TOKEN = "b" * 40
# Threshold 0: every mapped label fires, so each label's own score is stored.
THREE_LABELS = """<View>
  <Image name="image" value="$image"/>
  <Choices name="tags" toName="image" choice="multiple" model_score_threshold="0">
    <Choice value="Dogs"/>
    <Choice value="Bicycle"/>
    <Choice value="Vehicle" predicted_values="car"/>
    <Choice value="Unicorn"/>
  </Choices>
</View>"""
MOST_LABELS = ("<View><Image name='image' value='$image'/>"
               "<Choices name='tags' toName='image' choice='multiple' model_score_threshold='0'>"
               + "".join(f"<Choice value='{t}'/>" for t in TINY_TAGS[: int(len(TINY_TAGS) * FULL_VOCABULARY_SHARE) + 1])
               + "</Choices></View>")


@pytest.fixture
def client(tmp_path: Path, backend_engine: TaggingEngine, file_server: FileServer):
    for i in range(3):
        file_server.routes[f"/data/upload/7/img{i}.png"] = Route(body=image_bytes(10 + i))
    app = make_app(tmp_path, backend_engine, label_studio_url=file_server.url, label_studio_api_key=TOKEN)
    with TestClient(app) as c:
        yield c


def _predict(client: TestClient, config: str, project: str) -> list[dict]:
    tasks = [{"id": i + 1, "data": {"image": f"/data/upload/7/img{i}.png"}, "project": 7} for i in range(3)]
    response = client.post("/predict", json={"tasks": tasks, "project": f"{project}.1700000000",
                                             "label_config": config})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_a_three_label_project_computes_three_classes_with_the_full_models_scores(
        client: TestClient, backend_engine: TaggingEngine) -> None:
    results = _predict(client, THREE_LABELS, "7")
    state = client.app.state.ram
    (view,) = state.projects.class_views.views()
    assert view.engine.classes == ("dog", "car", "bicycle")  # vocabulary order
    assert view.engine.info()["num_classes"] == 3 and view.engine.info()["restricted"]
    assert view.engine.model is backend_engine.model and backend_engine.classes is None
    assert view.engine.model_version == backend_engine.model_version

    full = backend_engine.predict([image_bytes(10 + i) for i in range(3)])
    index = backend_engine.vocab.index_of
    for i, (prediction, reference) in enumerate(zip(results, full)):
        assert prediction["model_version"].startswith(backend_engine.model_version)
        stored = state.store.latest_prediction("7", i + 1)
        scores = {c["label"]: c["score"] for c in stored.predicted["tags"]}
        assert set(scores) == {"Dogs", "Bicycle", "Vehicle"}  # Unicorn maps to no RAM tag
        for label, tag in (("Dogs", "dog"), ("Bicycle", "bicycle"), ("Vehicle", "car")):
            assert scores[label] == pytest.approx(float(reference.probs[index(tag)]), abs=1e-5)
        # RAM tags are stored by their index in the full vocabulary; only computed ones can fire
        assert {t["name"] for t in stored.ram_tags} <= {"dog", "cat"}
        assert all(backend_engine.vocab.names[t["index"]] == t["name"] for t in stored.ram_tags)
        expected_mean = np.mean([reference.probs[index(t)] for t in ("dog", "car", "bicycle")])
        assert prediction["result"][0]["score"] == pytest.approx(float(expected_mean), abs=1e-5)

    _predict(client, THREE_LABELS, "8")  # another project with the same classes shares the view
    assert len(state.projects.class_views.views()) == 1


def test_a_project_needing_most_classes_uses_the_full_engine(client: TestClient,
                                                            backend_engine: TaggingEngine) -> None:
    results = _predict(client, MOST_LABELS, "9")
    assert client.app.state.ram.projects.class_views.views() == []
    full = backend_engine.predict([image_bytes(10)])[0].probs
    stored = client.app.state.ram.store.latest_prediction("9", 1)
    scores = {c["label"]: c["score"] for c in stored.predicted["tags"]}
    assert scores["dog"] == pytest.approx(float(full[backend_engine.vocab.index_of("dog")]), abs=1e-5)
    assert all("error" not in r for r in results)
