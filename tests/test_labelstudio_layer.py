"""The one Label Studio layer (`ram_client.labelstudio`): the server and the plugin score, pick
annotations and spot tokens the same way, and the corrections export writes each control back
as Label Studio had it (its own `toName`, a Taxonomy as a taxonomy)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from backend_fixtures import FileServer, Route, make_app, image_bytes
from fastapi.testclient import TestClient

from backend.labelstudio.project import build_project_model
from backend.labelstudio.results import predict_task
from backend.training.export import export_corrections
from backend.store import open_store
from ram_client.labelstudio.results import choice_item, counting_annotation
from ram_client.labelstudio.tasks import SAMPLE_ID_KEY, ram_prediction, read_review
from ram_client.labelstudio.tokens import is_personal_access_token
from ram_model import TaggingEngine
from ram_model.review import build_label_mapping
from ram_model.weights.testing import TINY_TAGS

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="tags" toName="image" choice="multiple">
    <Choice value="Dogs"/><Choice value="cat"/><Choice value="tree"/><Choice value="Car"/>
  </Choices>
</View>"""


def test_the_server_and_the_plugin_score_one_prediction_alike() -> None:
    """The same RAM scores and labels give the same item and prediction score on both sides: the
    mean of the chosen labels, not the best (a guess beside one sure label keeps the task uncertain)."""
    probs = np.zeros(len(TINY_TAGS), dtype=np.float32)
    probs[TINY_TAGS.index("dog")], probs[TINY_TAGS.index("cat")], probs[TINY_TAGS.index("tree")] = 0.9, 0.6, 0.2
    thresholds = np.full(len(TINY_TAGS), 0.5, dtype=np.float32)
    project = build_project_model(CONFIG, ram_names=TINY_TAGS, ram_names_zh=None, ram_thresholds=thresholds,
                                  engine_version="v1")
    outcome = predict_task(project, {"image": probs})
    (server_item,) = outcome.result
    assert set(server_item["value"]["choices"]) == {"Dogs", "cat"}

    mapping = build_label_mapping(["Dogs", "cat", "tree", "Car"], list(TINY_TAGS))
    fired = {"dog": float(probs[TINY_TAGS.index("dog")]), "cat": float(probs[TINY_TAGS.index("cat")])}
    (plugin_prediction,) = ram_prediction(fired, mapping, "v1")
    (plugin_item,) = plugin_prediction["result"]
    assert plugin_item["value"]["choices"] == ["Dogs", "cat"]
    assert plugin_item["score"] == server_item["score"] == pytest.approx((0.9 + 0.6) / 2)
    assert plugin_prediction["score"] == outcome.score == server_item["score"]


def test_the_annotation_that_counts_is_the_same_for_both() -> None:
    annotations = [
        {"id": 1, "result": [choice_item("tags", "image", "choices", ["cat"])], "updated_at": "2026-01-03",
         "ground_truth": True},
        {"id": 2, "result": [choice_item("tags", "image", "choices", ["Dogs"])], "updated_at": "2026-01-05"},
        {"id": 3, "result": [choice_item("tags", "image", "choices", ["tree"])], "updated_at": "2026-01-09",
         "was_cancelled": True},
    ]
    task = {"id": 7, "data": {SAMPLE_ID_KEY: "abc"}, "annotations": annotations}
    assert counting_annotation(annotations)["id"] == 1  # ground truth beats the newer one; skipped never counts
    assert read_review(task).annotation_id == 1 and read_review(task).labels == ["cat"]
    task["annotations"] = annotations[1:]
    assert counting_annotation(task["annotations"])["id"] == read_review(task).annotation_id == 2
    # Tasks of exports made before the shared keys still load.
    legacy = {"id": 8, "data": {"fiftyone_id": "old"}, "annotations": annotations[1:2]}
    assert read_review(legacy).sample_id == "old"


def _jwt(header: dict) -> str:
    encode = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{encode(header)}.{encode({'token_type': 'refresh'})}.c2lnbmF0dXJl"


def test_one_rule_spots_a_personal_access_token() -> None:
    assert is_personal_access_token(_jwt({"alg": "HS256", "typ": "JWT"}))
    assert not is_personal_access_token("0123456789abcdef" * 2 + "01234567")  # a legacy token
    assert not is_personal_access_token("not.a.jwt")  # two dots are not enough
    assert not is_personal_access_token(_jwt({"typ": "JWT"}))


TAXONOMY = """<View>
  <Image name="photo" value="$img"/>
  <Taxonomy name="kind" toName="photo">
    <Choice value="Animal"><Choice value="dog"/><Choice value="cat"/></Choice>
    <Choice value="Thing"><Choice value="car"/></Choice>
  </Taxonomy>
</View>"""
TOKEN = "c" * 40


def test_the_corrections_export_writes_taxonomy_and_to_name_as_label_studio_had_them(
        tmp_path: Path, backend_engine: TaggingEngine, file_server: FileServer) -> None:
    file_server.routes["/data/upload/3/a.png"] = Route(body=image_bytes(1), require_auth=f"Token {TOKEN}")
    app = make_app(tmp_path, backend_engine, label_studio_url=file_server.url, label_studio_api_key=TOKEN)
    task = {"id": 41, "data": {"img": "/data/upload/3/a.png"}, "project": 3}
    with TestClient(app) as client:
        answer = client.post("/predict", json={"tasks": [task], "project": "3.1700000000", "label_config": TAXONOMY})
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()["results"]
        result = [choice_item("kind", "photo", "taxonomy", [["Animal", "cat"], ["Thing", "car"]])]
        stored = client.post("/webhook", json={
            "action": "ANNOTATION_CREATED", "project": {"id": 3, "label_config": TAXONOMY}, "task": task,
            "annotation": {"id": 900, "task": 41, "result": result, "was_cancelled": False}})
        assert stored.json()["stored"] == 1
    with open_store(tmp_path / "model_dir" / "corrections.sqlite3") as store:
        summary = export_corrections(store, "3", tmp_path / "ls.json", fmt="labelstudio")
    assert summary.exported == 1
    (exported,) = json.loads((tmp_path / "ls.json").read_text())
    assert exported["annotations"][0]["result"] == result
    predicted = exported["predictions"][0]["result"]
    served = [item for item in prediction["result"] if item["type"] == "taxonomy"]
    assert [(p["from_name"], p["to_name"], p["type"]) for p in predicted] == [("kind", "photo", "taxonomy")]
    assert predicted[0]["value"] == served[0]["value"]  # the paths the server predicted
