"""Label Studio's bulk "Retrieve predictions" in ONE /predict (issue 22): Label Studio's
`predict_tasks` serialises the whole selection, so 10,000 selected tasks arrive as one
request. They get one answer each (per-task errors included), in order; beyond the
configured cap the answer is a clear 413. The images are four small PNGs shared by the
tasks, so the test measures the request path, not image decoding."""
from __future__ import annotations

import time
from pathlib import Path

from backend_fixtures import MULTI_CONFIG, FileServer, Route, image_bytes, make_app
from fastapi.testclient import TestClient

from ram_model import TaggingEngine

TASKS = 10_000


def test_ten_thousand_tasks_in_one_predict_each_get_an_answer(tmp_path: Path, backend_engine: TaggingEngine,
                                                             file_server: FileServer) -> None:
    for i in range(4):
        file_server.routes[f"/data/upload/1/{i}.png"] = Route(body=image_bytes(i, size=(32, 24)))
    tasks = [{"id": i, "data": {"image": f"/data/upload/1/{i % 4}.png"}, "project": 1} for i in range(TASKS)]
    tasks[17]["data"]["image"] = "/data/upload/1/missing.png"  # one task whose image is gone
    tasks[42] = {"id": 42, "data": {}}  # one malformed task
    app = make_app(tmp_path, backend_engine, label_studio_url=file_server.url)
    with TestClient(app) as client:
        started = time.perf_counter()
        response = client.post("/predict", json={"tasks": tasks, "project": "1.1", "label_config": MULTI_CONFIG})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text[:500]
        results = response.json()["results"]
        assert len(results) == TASKS and [r["task"] for r in results] == list(range(TASKS))
        failed = {r["task"]: r["error"] for r in results if "error" in r}
        assert set(failed) == {17, 42} and "404" in failed[17]
        assert all(r["result"] for r in results if "error" not in r)
        # Two tasks with the same image get the same prediction.
        assert results[0]["result"] == results[4]["result"]
        print(f"\n{TASKS} tasks in one /predict: {elapsed:.1f} s ({TASKS / elapsed:.0f} tasks/s)")

    capped = make_app(tmp_path / "capped", backend_engine, label_studio_url=file_server.url, max_predict_tasks=5000)
    with TestClient(capped) as client:
        refused = client.post("/predict", json={"tasks": tasks, "label_config": MULTI_CONFIG})
        assert refused.status_code == 413
        message = refused.json()["error"]["message"]
        assert "10000 tasks" in message and "5000" in message and "--max-predict-tasks" in message
