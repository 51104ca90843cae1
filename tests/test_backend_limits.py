"""Bounded resources: what one request may make the server hold or do.

Body size (declared and streamed), tasks per /predict, labeling-config size, depth,
controls and parse time, the download deadline end to end, and memory that grows with
the batch size rather than with the request.
"""
from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import httpx
import numpy as np
import pytest
from backend_fixtures import MULTI_CONFIG, FileServer, Route, image_bytes, make_app, running_server
from fastapi.testclient import TestClient
from PIL import Image

from ram_model import TaggingEngine

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.

IMAGE = "/data/upload/1/a.png"


def _task(i: int, ref: str = IMAGE) -> dict:
    return {"id": i, "data": {"image": ref}}


def _client(tmp_path: Path, engine: TaggingEngine, server: FileServer, **settings) -> TestClient:
    server.routes.setdefault(IMAGE, Route(body=image_bytes(1)))
    app = make_app(tmp_path, engine, label_studio_url=server.url, **settings)
    return TestClient(app, raise_server_exceptions=False)


def _error(response: httpx.Response) -> dict:
    return response.json()["error"]


# --- request bodies -------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_refused_with_413(tmp_path, backend_engine, file_server):
    with _client(tmp_path, backend_engine, file_server, max_body_bytes=4096, max_predict_body_bytes=4096) as client:
        body = {"tasks": [_task(1)], "label_config": MULTI_CONFIG, "padding": "x" * 5000}
        response = client.post("/predict", json=body)
        assert response.status_code == 413
        assert _error(response)["code"] == "too_large"
        assert "--max-predict-body-mb" in _error(response)["message"]  # /predict has its own (larger) cap
        other = client.post("/v1/projects/5/thresholds/tune", json={"padding": "x" * 5000})
        assert other.status_code == 413 and "--max-body-mb" in _error(other)["message"]
        del body["padding"]
        assert client.post("/predict", json=body).status_code == 200


def test_a_streamed_body_without_length_is_cut_at_the_limit(tmp_path, backend_engine, file_server):
    # Chunked transfer declares no Content-Length: the bytes are counted as they arrive.
    app = make_app(tmp_path, backend_engine, label_studio_url=file_server.url, max_body_bytes=4096,
                   max_predict_body_bytes=4096)
    payload = json.dumps({"tasks": [_task(1)], "label_config": MULTI_CONFIG, "padding": "x" * 50_000}).encode()

    def chunks():
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    with running_server(app) as url:
        response = httpx.post(f"{url}/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert _error(response)["code"] == "too_large"


def test_uploads_have_their_own_larger_limit(tmp_path, backend_engine, file_server):
    small_png = image_bytes(2)
    with _client(tmp_path, backend_engine, file_server, max_body_bytes=1024, max_upload_bytes=200_000) as client:
        ok = client.post("/v1/tag", files=[("images", ("a.png", small_png))])
        assert ok.status_code == 200, ok.text
        assert len(small_png) > 1024  # over the JSON limit, under the upload limit
        big = client.post("/v1/tag", files=[("images", ("big.png", b"\0" * 300_000))])
        assert big.status_code == 413
        assert "--max-upload-mb" in _error(big)["message"]


def test_too_many_tasks_is_a_413_that_says_what_to_do(tmp_path, backend_engine, file_server):
    with _client(tmp_path, backend_engine, file_server, max_predict_tasks=3) as client:
        over = client.post("/predict", json={"tasks": [_task(i) for i in range(4)], "label_config": MULTI_CONFIG})
        assert over.status_code == 413
        assert "4 tasks" in _error(over)["message"] and "--max-predict-tasks" in _error(over)["message"]
        ok = client.post("/predict", json={"tasks": [_task(i) for i in range(3)], "label_config": MULTI_CONFIG})
        assert ok.status_code == 200
        assert all("result" in r for r in ok.json()["results"])


# --- labeling configs -----------------------------------------------------------------


def _config_with(n_choices: int = 4, *, controls: int = 1, depth: int = 0) -> str:
    choices = "".join(f'<Choice value="label {i}"/>' for i in range(n_choices))
    blocks = "".join(f'<Choices name="c{j}" toName="image" choice="multiple">{choices}</Choices>' for j in range(controls))
    return f'<View>{"<View>" * depth}<Image name="image" value="$image"/>{blocks}{"</View>" * depth}</View>'


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<View><Image name="image" value="$image"/><Choices name="t" toName="image"><Choice value="&lol3;"/></Choices></View>"""


@pytest.mark.parametrize(
    ("config", "status", "words"),
    [
        (_config_with(400), 413, "bytes; the limit is 8192"),
        (_config_with(depth=70), 413, "nests deeper than 64"),
        (_config_with(controls=51), 413, "51 Choices/Taxonomy controls"),
        (BILLION_LAUGHS, 422, "DOCTYPE"),
        (BILLION_LAUGHS.replace("<!DOCTYPE", "<!doctype"), 422, "DOCTYPE"),
        ("<View><Image", 422, "not valid XML"),
    ],
)
def test_label_config_limits(tmp_path, backend_engine, file_server, config: str, status: int, words: str):
    limit = 8192 if "8192" in words else 512 * 1024
    with _client(tmp_path, backend_engine, file_server, max_label_config_bytes=limit) as client:
        for route, body in (("/predict", {"tasks": [_task(1)], "label_config": config}), ("/setup", {"schema": config})):
            response = client.post(route, json=body)
            assert response.status_code == status, (route, response.text)
            assert words in _error(response)["message"]


def test_label_config_parse_time_is_bounded(tmp_path, backend_engine, file_server):
    with _client(tmp_path, backend_engine, file_server, label_config_timeout_s=1e-6) as client:
        response = client.post("/setup", json={"schema": MULTI_CONFIG})
    assert response.status_code == 413
    assert "took over" in _error(response)["message"] and "--label-config-timeout" in _error(response)["message"]


def test_a_webhook_with_an_oversized_config_still_keeps_the_annotation(tmp_path, backend_engine, file_server):
    with _client(tmp_path, backend_engine, file_server, max_label_config_bytes=2048) as client:
        body = {
            "action": "ANNOTATION_CREATED",
            "project": {"id": 3, "label_config": _config_with(200)},
            "annotation": {"id": 11, "task": 5, "result": [{"from_name": "c0", "value": {"choices": ["label 1"]}}]},
            "task": {"id": 5, "data": {"image": IMAGE}},
        }
        response = client.post("/webhook", json=body)
        assert response.status_code == 200 and response.json()["stored"] == 1
        stored = client.app.state.ram.store.get(11)
    assert stored.final == {"c0": [{"choices": ["label 1"]}]}


# --- downloads and memory -------------------------------------------------------------


def test_a_slow_drip_task_gets_its_own_error_and_the_others_their_predictions(tmp_path, backend_engine, file_server):
    file_server.routes["/data/upload/1/drip.png"] = Route(body=b"x" * 40, drip_s=0.3)
    with _client(tmp_path, backend_engine, file_server, download_timeout_s=1.0) as client:
        tasks = [_task(1), _task(2, "/data/upload/1/drip.png"), _task(3)]
        response = client.post("/predict", json={"tasks": tasks, "label_config": MULTI_CONFIG})
    results = response.json()["results"]
    assert response.status_code == 200
    assert "result" in results[0] and "result" in results[2]
    assert "timed out" in results[1]["error"]


def _noise_png(side: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def test_predict_memory_grows_with_the_batch_not_with_the_request(tmp_path, backend_engine, file_server):
    tasks = 48
    png = _noise_png(300, seed=5)  # about 270 KB, incompressible
    for i in range(tasks):
        file_server.routes[f"/data/upload/1/{i}.png"] = Route(body=png)
    body = {"tasks": [_task(i + 1, f"/data/upload/1/{i}.png") for i in range(tasks)], "label_config": MULTI_CONFIG}
    # Chunks of max(engine batch 4, coalesce 4) = 4 images.
    with _client(tmp_path, backend_engine, file_server, coalesce_max_batch=4) as client:
        client.post("/predict", json={**body, "tasks": body["tasks"][:2]})  # warm caches
        tracemalloc.start()
        try:
            response = client.post("/predict", json=body)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 200
    assert all("result" in r for r in response.json()["results"])
    all_images = tasks * len(png)
    # Holding every image at once would need at least `all_images`; two chunks in
    # flight, with copies, stay far below half of it.
    assert peak < all_images / 2, (peak, all_images)
