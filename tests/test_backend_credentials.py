"""The Label Studio key goes only to the configured Label Studio, whatever a task or a
request says, and Label Studio media paths never leave their root.

Two real HTTP servers on loopback play Label Studio and an attacker's host; every test
checks what the attacker's server actually received, not what the code meant to send.
"""
from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from backend_fixtures import MULTI_CONFIG, FileServer, Route, image_bytes, make_app
from fastapi.testclient import TestClient

from backend.errors import BackendError
from backend.serving.media import LabelStudioAccess, MediaFetcher
from ram_model import TaggingEngine

TOKEN = "c" * 40
PNG = image_bytes(3)


@pytest.fixture
def evil() -> Iterator[FileServer]:
    with FileServer() as server:
        server.routes["/x.png"] = Route(body=PNG)
        yield server


@pytest.fixture
def label_studio(file_server: FileServer) -> FileServer:
    file_server.routes["/data/upload/1/a.png"] = Route(body=PNG, require_auth=f"Token {TOKEN}")
    file_server.routes["/data/local-files/?d=dir/a.png"] = Route(body=PNG, require_auth=f"Token {TOKEN}")
    return file_server


def fetch(ref: str, ls: LabelStudioAccess, **kwargs) -> bytes:
    async def go() -> bytes:
        fetcher = MediaFetcher(**kwargs)
        try:
            return await fetcher.fetch(ref, task_id=1, ls=ls)
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def leaked(server: FileServer) -> list[tuple[str, str | None]]:
    return [(path, auth) for path, auth in server.seen if auth and TOKEN in auth]


def hostile_spellings(evil: FileServer, ls: FileServer) -> list[str]:
    e, p = evil.port, ls.port
    return [
        f"http://127.0.0.1:{e}/x.png",
        f"HTTP://127.0.0.1:{e}/x.png",
        f"hTtPs://127.0.0.1:{e}/x.png",
        f"//127.0.0.1:{e}/x.png",
        f"///127.0.0.1:{e}/x.png",
        f"/\\127.0.0.1:{e}/x.png",
        f"\\\\127.0.0.1:{e}/x.png",
        f"http:\\\\127.0.0.1:{e}/x.png",
        f"http:/127.0.0.1:{e}/x.png",
        f"http:127.0.0.1:{e}/x.png",
        f"http://127.0.0.1:{p}@127.0.0.1:{e}/x.png",
        f"http://127.0.0.1:{p}\\@127.0.0.1:{e}/x.png",
        f"http://user:{TOKEN}@127.0.0.1:{e}/x.png",
        f"http://127.0.0.1.:{e}/x.png",
        f"http://localhost:{e}/x.png",
        f"http://LOCALHOST.:{e}/x.png",
        f"http://ｌocalhost:{e}/x.png",  # full-width l: IDNA would map it to localhost
        f"http://xn--localhost-.:{e}/x.png",
        f"http://[::ffff:127.0.0.1]:{e}/x.png",
        f"http://[::1:{e}/x.png",
        f"http://127.0.0.1:{e}\x00/x.png",
        f"http://127.0.0.1:{e}\r\nX: y/x.png",
        f" \thttp://127.0.0.1:{e}/x.png",
        f"http://127.0.0.1:{p}:{e}/x.png",
        f"http://127.0.0.1:+{e}/x.png",
    ]


def test_no_spelling_of_another_host_gets_the_key(evil: FileServer, label_studio: FileServer):
    ls = LabelStudioAccess(label_studio.url, TOKEN)
    for ref in hostile_spellings(evil, label_studio):
        with pytest.raises(BackendError):
            fetch(ref, ls)
    assert evil.seen == [] and label_studio.seen == []


def test_allowed_hosts_never_get_the_key(evil: FileServer, label_studio: FileServer):
    ls = LabelStudioAccess(label_studio.url, TOKEN)
    allowed = [f"127.0.0.1:{evil.port}"]
    for ref in (f"http://127.0.0.1:{evil.port}/x.png", f"HTTP://127.0.0.1.:{evil.port}/x.png"):
        assert fetch(ref, ls, allowed_hosts=allowed) == PNG
    assert len(evil.seen) == 2 and leaked(evil) == []


def test_label_studio_origin_is_compared_normalised(label_studio: FileServer):
    ls = LabelStudioAccess(label_studio.url, TOKEN)
    for ref in (
        f"HTTP://127.0.0.1:{label_studio.port}/data/upload/1/a.png",
        f"http://127.0.0.1.:{label_studio.port}/data/upload/1/./a.png",
        "/data/upload/1/b/../a.png",
        "/data/upload/1/%61.png",
        "/data/local-files/?d=dir%2Fa.png",
        "/data/local-files/?d=dir/./a.png",
    ):
        assert fetch(ref, ls) == PNG, ref
    # Every request was rebuilt into the canonical path, and carried the key.
    assert {path for path, _ in label_studio.seen} == {"/data/upload/1/a.png", "/data/local-files/?d=dir/a.png"}


@pytest.mark.parametrize(
    "ref",
    [
        "/data/upload/../../api/projects",
        "/data/upload/%2e%2e/%2e%2e/api/projects",
        "/data/upload/%2E%2E%2F%2E%2E%2Fapi/projects",
        "/data/upload/1/%252e%252e/%252e%252e/etc",
        "/data/upload/1/..%2f..%2f..%2fapi",
        "/data/upload/",
        "/data/upload/1/a.png?x=1",
        "/data/local-files/?d=../../etc/passwd",
        "/data/local-files/?d=dir/../../etc/passwd",
        "/data/local-files/?d=%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/data/local-files/?d=%252e%252e/etc/passwd",
        "/data/local-files/?d=/etc/passwd",
        "/data/local-files/?d=%2Fetc%2Fpasswd",
        "/data/local-files/?d=C:/Windows/win.ini",
        "/data/local-files/?d=a.png&d=../b.png",
        "/data/local-files/?d=",
        "/data/local-files/?x=a.png",
        "/api/projects/",
        "/api/users/",
        "/DATA/upload/1/a.png",
        "/data/upload\\..\\..\\api",
        "/tasks/1/presign/?fileuri=a&fileuri=b",
        "/tasks/../api/presign/?fileuri=a",
    ],
)
def test_label_studio_paths_stay_in_their_root(ref: str, label_studio: FileServer):
    with pytest.raises(BackendError):
        fetch(ref, LabelStudioAccess(label_studio.url, TOKEN))
    assert label_studio.seen == []


def test_redirects_from_label_studio_media_are_not_followed(evil: FileServer, label_studio: FileServer):
    label_studio.routes["/data/upload/1/r.png"] = Route(
        status=302, headers={"Location": f"http://127.0.0.1:{evil.port}/x.png"}, require_auth=f"Token {TOKEN}"
    )
    with pytest.raises(BackendError, match="HTTP 302"):
        fetch("/data/upload/1/r.png", LabelStudioAccess(label_studio.url, TOKEN))
    assert evil.seen == []


def test_presign_redirect_is_followed_without_the_key(evil: FileServer, label_studio: FileServer):
    uri = "s3://bucket/a.png"
    encoded = base64.urlsafe_b64encode(uri.encode()).decode()
    label_studio.routes[f"/tasks/1/presign/?fileuri={encoded}"] = Route(
        status=303, headers={"Location": f"http://127.0.0.1:{evil.port}/x.png"}, require_auth=f"Token {TOKEN}"
    )
    assert fetch(uri, LabelStudioAccess(label_studio.url, TOKEN)) == PNG
    assert evil.seen == [("/x.png", None)]
    # A presign answer pointing at a URL with credentials is refused.
    label_studio.routes[f"/tasks/1/presign/?fileuri={encoded}"] = Route(
        status=303, headers={"Location": f"http://u:p@127.0.0.1:{evil.port}/x.png"}, require_auth=f"Token {TOKEN}"
    )
    with pytest.raises(BackendError, match="credentials"):
        fetch(uri, LabelStudioAccess(label_studio.url, TOKEN))


class TestThroughTheServer:
    """The same guarantees through `/setup` and `/predict`, as a caller would try them."""

    @staticmethod
    def predict(client: TestClient, images: list[str], project: str = "1.1") -> list[dict]:
        tasks = [{"id": i + 1, "data": {"image": ref}} for i, ref in enumerate(images)]
        response = client.post("/predict", json={"tasks": tasks, "project": project, "label_config": MULTI_CONFIG})
        assert response.status_code == 200, response.text
        return response.json()["results"]

    def test_configured_key_cannot_be_repointed_by_setup(
        self, tmp_path: Path, backend_engine: TaggingEngine, evil: FileServer, label_studio: FileServer
    ):
        evil.routes["/data/upload/1/a.png"] = Route(body=PNG)
        app = make_app(tmp_path, backend_engine, label_studio_url=label_studio.url, label_studio_api_key=TOKEN)
        with TestClient(app) as client:
            setup = {"project": "1.1", "schema": MULTI_CONFIG, "hostname": evil.url, "access_token": None}
            assert client.post("/setup", json=setup).status_code == 200
            results = self.predict(client, ["/data/upload/1/a.png", *hostile_spellings(evil, label_studio)])
        assert "error" not in results[0]
        assert all("error" in r for r in results[1:])
        # Besides the image, the key reaches Label Studio's model-connection API (labelstudio.version_sync), there only.
        to_ls = [(path, auth) for path, auth in leaked(label_studio) if not path.startswith("/api/ml")]
        assert evil.seen == [] and to_ls == [("/data/upload/1/a.png", f"Token {TOKEN}")]

    def test_a_key_without_its_url_is_refused_at_start(self, tmp_path: Path):
        from pydantic import ValidationError

        from backend.settings import Settings

        with pytest.raises(ValidationError, match="LABEL_STUDIO_URL"):
            Settings(model_dir=tmp_path, label_studio_api_key=TOKEN)

    def test_setup_pairs_are_never_mixed(
        self, tmp_path: Path, backend_engine: TaggingEngine, evil: FileServer, label_studio: FileServer
    ):
        """With no configured URL, a later /setup naming another host does not inherit
        the token an earlier /setup sent."""
        evil.routes["/data/upload/1/a.png"] = Route(body=PNG)
        app = make_app(tmp_path, backend_engine)
        with TestClient(app) as client:
            good = {"project": "1.1", "schema": MULTI_CONFIG, "hostname": label_studio.url, "access_token": TOKEN}
            assert client.post("/setup", json=good).status_code == 200
            assert "error" not in self.predict(client, ["/data/upload/1/a.png"])[0]
            hijack = {"project": "1.1", "schema": MULTI_CONFIG, "hostname": evil.url}
            assert client.post("/setup", json=hijack).status_code == 200
            self.predict(client, ["/data/upload/1/a.png"])
        assert leaked(evil) == [] and evil.seen == [("/data/upload/1/a.png", None)]

    @pytest.mark.parametrize(
        "hostname", ["ftp://x", "http://u:p@127.0.0.1:1", "http://[::1", "javascript:alert(1)", "http://a\\b"]
    )
    def test_setup_rejects_odd_hostnames(self, tmp_path: Path, backend_engine: TaggingEngine, hostname: str):
        with TestClient(make_app(tmp_path, backend_engine)) as client:
            response = client.post("/setup", json={"project": "1.1", "schema": MULTI_CONFIG, "hostname": hostname})
        assert response.status_code in (400, 403), response.text


class TestBasicAuthEverywhere:
    @pytest.fixture
    def secured(self, tmp_path: Path, backend_engine: TaggingEngine) -> Iterator[TestClient]:
        app = make_app(tmp_path, backend_engine, basic_auth_user="ls", basic_auth_pass="s3cret")
        with TestClient(app) as client:
            yield client

    def test_every_route_but_health_needs_it(self, secured: TestClient):
        paths = set(secured.app.openapi()["paths"]) | {"/", "/docs", "/redoc", "/openapi.json", "/nope"}
        paths -= {"/health"}
        auth = {"Authorization": "Basic " + base64.b64encode(b"ls:s3cret").decode()}
        for path in sorted(paths):
            concrete = path.replace("{", "").replace("}", "")
            for method in ("GET", "POST"):
                response = secured.request(method, concrete)
                assert response.status_code == 401, (method, path, response.status_code)
        assert secured.get("/openapi.json", headers=auth).status_code == 200
        assert secured.get("/docs", headers=auth).status_code == 200

    def test_health_stays_open_for_probes(self, secured: TestClient):
        assert secured.get("/health").json()["status"] == "UP"
