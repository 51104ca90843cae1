"""Bad input is a 4xx with a message that says what is wrong, never a 500.

In a `/predict` batch, one bad task gets its own error and the other tasks their
predictions; webhook payloads and label configs with wrong types are refused whole.
Ids must fit SQLite's 64-bit integers.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from backend_fixtures import MULTI_CONFIG, client_with_image
from fastapi.testclient import TestClient

from ram_model import TaggingEngine

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.

IMAGE = "/data/upload/1/a.png"
MAX_ID = 2**63 - 1


@pytest.fixture(scope="module")
def client(backend_engine: TaggingEngine, tmp_path_factory: pytest.TempPathFactory):
    with client_with_image(tmp_path_factory.mktemp("bad_input"), backend_engine, IMAGE, seed=1) as c:
        yield c


def post(client: TestClient, path: str, body: Any):
    # ensure_ascii: lone surrogates travel as \ud800 escapes, which is valid JSON.
    return client.post(path, content=json.dumps(body, ensure_ascii=True), headers={"content-type": "application/json"})


def good_task(task_id: int = 1) -> dict:
    return {"id": task_id, "data": {"image": IMAGE}}


BAD_TASKS = [
    (5, "must be a JSON object"),
    ([good_task()], "must be a JSON object"),
    ({"id": 2**63, "data": {"image": IMAGE}}, "id: Input should be less than or equal to 9223372036854775807"),
    ({"id": -(2**63) - 1, "data": {"image": IMAGE}}, "id: Input should be greater than or equal to"),
    ({"id": 10**40, "data": {"image": IMAGE}}, "id:"),
    ({"id": True, "data": {"image": IMAGE}}, "id: Input should be a valid integer"),
    ({"id": "7", "data": {"image": IMAGE}}, "id: Input should be a valid integer"),
    ({"id": 1.5, "data": {"image": IMAGE}}, "id: Input should be a valid integer"),
    ({"id": 1, "data": "image.png"}, "data: Input should be a valid dictionary"),
    ({"id": 1, "data": {"image": ["a.png"]}}, "must be one image URL"),
    ({"id": 1, "data": {"picture": IMAGE}}, "no 'image' field"),
    ({"id": 1, "data": {"image": IMAGE}, "annotations": 5}, "annotations: Input should be a valid list"),
    ({"id": 1, "data": {"image": IMAGE}, "annotations": [{"id": "x"}]}, "annotations.0.id"),
    ({"id": 1, "data": {"image": IMAGE}, "annotations": [{"result": {"from_name": "tags"}}]}, "annotations.0.result"),
    ({"id": 1, "data": {"image": IMAGE}, "annotations": [{"result": [{"from_name": "tags", "value": [1]}]}]},
     "annotations.0.result.0.value"),
    ({"id": 1, "data": {"image": IMAGE}, "annotations": [{"result": [{"value": {"choices": "Dogs"}}]}]},
     "value.choices"),
    ({"id": 1, "data": {"image": IMAGE}, "annotations": [{"result": [{"value": {"choices": [{"a": 1}]}}]}]},
     "value.choices.0"),
    ({"id": 1, "data": {"image": IMAGE}, "annotations": [{"result": [{"value": {"taxonomy": ["Dog"]}}]}]},
     "value.taxonomy.0"),
    ({"id": 1, "data": {"image": IMAGE}, "annotations": [{"result": [{"from_name": "\ud800"}]}]}, "lone surrogate"),
    ({"id": 1, "data": {"image": "http://[::1"}}, "cannot be parsed"),
    ({"id": 1, "data": {"image": "http://[zz]/a.png"}}, "cannot be parsed"),
    ({"id": 1, "data": {"image": "http://[1:2:3]/a.png"}}, "cannot be parsed"),
    ({"id": 1, "data": {"image": "/data/upload/1/a\x00.png"}}, "control characters"),
    ({"id": 1, "data": {"image": "/data/upload/1/\x1b[31m.png"}}, "control characters"),
    ({"id": 1, "data": {"image": "/data/upload/1/\ud800.png"}}, "not valid Unicode"),
    ({"id": 1, "data": {"image": "http://127.0.0.1/" + "a" * 70_000}}, "the limit is 8192"),
    ({"id": 1, "data": {"image": "http://127.0.0.1:99999/a.png"}}, "not a port number"),
]


@pytest.mark.parametrize(("bad", "words"), BAD_TASKS, ids=[str(i) for i in range(len(BAD_TASKS))])
def test_one_bad_task_gets_its_own_error_and_the_others_their_predictions(client: TestClient, bad: Any, words: str):
    response = post(client, "/predict", {"tasks": [good_task(1), bad, good_task(3)], "label_config": MULTI_CONFIG,
                                         "project": "7.1"})
    assert response.status_code == 200, response.text
    first, middle, last = response.json()["results"]
    assert "result" in first and "result" in last
    assert "result" not in middle and words in middle["error"], middle


def test_ids_up_to_64_bits_are_served_and_stored(client: TestClient):
    response = post(client, "/predict", {"tasks": [good_task(MAX_ID)], "label_config": MULTI_CONFIG, "project": "7"})
    assert response.json()["results"][0]["task"] == MAX_ID
    assert client.app.state.ram.store.latest_prediction("7", MAX_ID) is not None
    webhook = {"action": "ANNOTATION_CREATED", "project": {"id": 7, "label_config": MULTI_CONFIG},
               "annotation": {"id": MAX_ID, "task": MAX_ID, "result": []}, "task": good_task(MAX_ID)}
    assert post(client, "/webhook", webhook).json()["stored"] == 1
    assert client.app.state.ram.store.get(MAX_ID).task_id == MAX_ID


def _annotation_event(**changes: Any) -> dict:
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 7, "label_config": MULTI_CONFIG},
        "annotation": {"id": 21, "task": 1, "result": [{"from_name": "tags", "value": {"choices": ["Dogs"]}}]},
        "task": good_task(1),
    }
    event.update(changes)
    return event


BAD_WEBHOOKS = [
    ({"annotation": {"id": 2**64, "task": 1, "result": []}}, "annotation.id"),
    ({"annotation": {"id": 1, "task": 2**64, "result": []}}, "annotation.task"),
    ({"annotation": {"id": 1, "task": {"id": [1]}, "result": []}}, "annotation.task.id"),
    ({"annotation": {"id": 1, "task": 1, "result": [{"from_name": "tags", "value": 5}]}}, "annotation.result.0.value"),
    ({"annotation": {"id": 1, "task": 1, "result": [{"from_name": ["tags"]}]}}, "annotation.result.0.from_name"),
    ({"annotation": {"id": 1, "task": 1, "project": [7], "result": []}}, "annotation.project"),
    ({"project": {"id": 7, "label_config": 5}}, "project.label_config"),
    ({"project": {"id": 7, "label_config": ["<View/>"]}}, "project.label_config"),
    ({"project": {"id": {"x": 1}}}, "project.id"),
    ({"task": {"id": 1, "data": 5}}, "task.data"),
    ({"task": [{"id": [1]}]}, "task.0.id"),
    ({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 2**63}]}, "annotations.0.id"),
    ({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": True}]}, "annotations.0.id"),
    ({"action": "\ud800"}, "action"),
]


@pytest.mark.parametrize(("changes", "words"), BAD_WEBHOOKS, ids=[str(i) for i in range(len(BAD_WEBHOOKS))])
def test_malformed_webhooks_are_422_and_name_the_field(client: TestClient, changes: dict, words: str):
    response = post(client, "/webhook", _annotation_event(**changes))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and words in error["message"], error


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", {"tasks": [good_task()], "label_config": 5}),
        ("/predict", {"tasks": [good_task()], "label_config": {"xml": MULTI_CONFIG}}),
        ("/predict", {"tasks": [good_task()], "label_config": MULTI_CONFIG.replace("Dogs", "D\ud800")}),
        ("/setup", {"schema": [MULTI_CONFIG]}),
        ("/setup", {"schema": MULTI_CONFIG, "hostname": 5}),
        ("/predict", {"tasks": "all", "label_config": MULTI_CONFIG}),
        ("/predict", {"tasks": [good_task()], "label_config": MULTI_CONFIG, "project": [7]}),
    ],
)
def test_wrong_types_at_the_top_are_422(client: TestClient, path: str, body: dict):
    response = post(client, path, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b'{"tasks": [{"id": 1' + b"0" * 5000 + b"}]}",
     b"\xff\xfe", b'{"tasks": ['],
)
def test_undecodable_json_is_400(client: TestClient, raw: bytes):
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
