"""End to end against a real Label Studio (1.2x) and our server running under uvicorn.

Label Studio imports uploaded and local-files images, calls our /health, /setup and
/predict exactly as it does for any ML backend, stores the predictions, and posts
annotation webhooks that must land in the corrections store.
"""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from backend_fixtures import (
    MULTI_CONFIG,
    TAXONOMY_CONFIG,
    image_bytes,
    make_app,
    running_server,
)
from labelstudio_server import LabelStudio

from backend.store.sqlite import SQLiteStore as CorrectionsStore
from backend.serving.media import LabelStudioAccess, MediaFetcher
from ram_model import TaggingEngine

# The fixtures backend_engine, controlled_thresholds and file_server (and label_studio) come from these modules.


pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def _ok(response: httpx.Response) -> dict | list:
    assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.text[:500]}"
    return response.json() if response.content else {}


def _project(ls: httpx.Client, title: str, config: str) -> int:
    return _ok(ls.post("/api/projects", json={"title": title, "label_config": config}))["id"]


def _tasks(ls: httpx.Client, project: int) -> list[dict]:
    body = _ok(ls.get("/api/tasks", params={"project": project, "page_size": 100}))
    return body["tasks"] if isinstance(body, dict) else body


def _retrieve_predictions(ls: httpx.Client, project: int) -> None:
    _ok(ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
                json={"selectedItems": {"all": True, "excluded": []}}))


def _predictions(ls: httpx.Client, task_id: int) -> list[dict]:
    return _ok(ls.get("/api/predictions", params={"task": task_id}))


@pytest.fixture(scope="module")
def ram_server(label_studio: LabelStudio, backend_engine: TaggingEngine, tmp_path_factory: pytest.TempPathFactory):
    """Our server, configured like a fresh user's: no URL or key of its own, it learns
    Label Studio's hostname and token from /setup."""
    tmp = tmp_path_factory.mktemp("ram-server")
    app = make_app(tmp, backend_engine)
    with running_server(app) as url:
        yield url, tmp / "model_dir" / "corrections.sqlite3"


def test_label_studio_stores_our_predictions_and_webhooks_land(label_studio: LabelStudio, ram_server):
    url, store_path = ram_server
    with label_studio.client() as ls:
        project = _project(ls, "RAM tags", MULTI_CONFIG)
        files = [(f"file{i}", (f"img{i}.png", image_bytes(i), "image/png")) for i in range(3)]
        _ok(ls.post(f"/api/projects/{project}/import", files=files))
        # A local-files task and a task pointing at a host nobody allowed.
        local_dir = label_studio.local_files_root / "photos"
        local_dir.mkdir(exist_ok=True)
        (local_dir / "local.png").write_bytes(image_bytes(7))
        _ok(ls.post("/api/storages/localfiles", json={"project": project, "title": "photos",
                                                      "path": str(local_dir), "use_blob_urls": True}))
        _ok(ls.post(f"/api/projects/{project}/import", json=[
            {"image": "/data/local-files/?d=photos/local.png"},
            {"image": "http://10.20.30.40/private.png"},
        ]))
        tasks = _tasks(ls, project)
        assert len(tasks) == 5

        backend = _ok(ls.post("/api/ml", json={"project": project, "url": url, "title": "RAM",
                                                "is_interactive": False}))
        assert backend.get("state") in (None, "CO", "CONNECTED"), backend
        _retrieve_predictions(ls, project)

        label_config = _ok(ls.get(f"/api/projects/{project}"))["label_config"]
        version = httpx.post(f"{url}/setup", json={"project": f"{project}.0", "schema": label_config}).json()
        by_image = {t["data"]["image"]: t for t in tasks}
        for image, task in by_image.items():
            stored = _predictions(ls, task["id"])
            if image.startswith("http://10.20.30.40"):
                assert stored == [], "a refused image must not produce a (blank) prediction"
                continue
            assert len(stored) == 1, (image, stored)
            (prediction,) = stored
            assert prediction["model_version"] == version["model_version"]
            (item,) = prediction["result"]
            assert item["from_name"] == "tags" and item["type"] == "choices"
            assert set(item["value"]["choices"]) == {"Dogs", "Cat"}
            assert 0.0 < prediction["score"] <= 1.0

        # Annotate one task: the webhook must put the correction in our store.
        upload_task = next(t for i, t in by_image.items() if i.startswith("/data/upload/"))
        _ok(ls.post("/api/webhooks/", json={
            "project": project, "url": f"{url}/webhook", "send_payload": True, "send_for_all_actions": False,
            "actions": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"], "is_active": True}))
        annotation = _ok(ls.post(f"/api/tasks/{upload_task['id']}/annotations/", json={
            "result": [{"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": ["Car"]}}],
            "was_cancelled": False, "lead_time": 2.5}))

    deadline = time.monotonic() + 20
    row = None
    while time.monotonic() < deadline and row is None:
        with CorrectionsStore(store_path) as store:
            row = store.get(annotation["id"])
        if row is None:
            time.sleep(0.2)
    assert row is not None, "the ANNOTATION_CREATED webhook did not reach the corrections store"
    assert row.task_id == upload_task["id"] and row.project == str(project)
    assert row.image_ref == upload_task["data"]["image"]
    assert row.final == {"tags": ["Car"]}
    assert [(t["label"], t["ram_name"]) for t in row.final_ram_tags] == [("Car", "car")]
    assert {p["label"] for p in row.predicted["tags"]} == {"Dogs", "Cat"}
    assert row.model_version == version["model_version"]


def test_taxonomy_project(label_studio: LabelStudio, ram_server):
    url, _ = ram_server
    with label_studio.client() as ls:
        project = _project(ls, "RAM taxonomy", TAXONOMY_CONFIG)
        _ok(ls.post(f"/api/projects/{project}/import", files=[("file", ("t.png", image_bytes(3), "image/png"))]))
        _ok(ls.post("/api/ml", json={"project": project, "url": url, "title": "RAM", "is_interactive": False}))
        _retrieve_predictions(ls, project)
        (task,) = _tasks(ls, project)
        (prediction,) = _predictions(ls, task["id"])
    (item,) = prediction["result"]
    assert item["type"] == "taxonomy"
    assert sorted(item["value"]["taxonomy"]) == [["Animal", "Cat"], ["Animal", "Dog"]]


def test_uploads_download_with_legacy_token_and_personal_access_token(label_studio: LabelStudio):
    with label_studio.client() as ls:
        project = _project(ls, "RAM tokens", MULTI_CONFIG)
        _ok(ls.post(f"/api/projects/{project}/import", files=[("file", ("k.png", image_bytes(5), "image/png"))]))
        (task,) = _tasks(ls, project)
    pat = label_studio.personal_access_token()

    async def fetch(token: str | None) -> bytes:
        fetcher = MediaFetcher()
        try:
            return await fetcher.fetch(task["data"]["image"], task_id=task["id"],
                                       ls=LabelStudioAccess(label_studio.url, token))
        finally:
            await fetcher.aclose()

    assert asyncio.run(fetch(label_studio.token)) == image_bytes(5)
    assert asyncio.run(fetch(pat)) == image_bytes(5)
    from backend.errors import MediaError

    with pytest.raises(MediaError, match="401|403"):
        asyncio.run(fetch(None))
