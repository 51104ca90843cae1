"""Task-image downloads against a real local HTTP server: who gets the key, what is
refused before any request is made, and the limits on every download."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import pytest
from backend_fixtures import FileServer, Route, image_bytes

from backend.errors import HostNotAllowed, MediaError
from backend.serving.media import LabelStudioAccess, MediaFetcher, resolve_allowed_path

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.

TOKEN = "f" * 40
PNG = image_bytes(1)


def fetch(ref: str, ls: LabelStudioAccess, task_id: int | None = 1, **kwargs) -> bytes:
    async def go() -> bytes:
        fetcher = MediaFetcher(**kwargs)
        try:
            return await fetcher.fetch(ref, task_id=task_id, ls=ls)
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def test_label_studio_upload_gets_the_legacy_token(file_server: FileServer):
    file_server.routes["/data/upload/1/a.png"] = Route(body=PNG, require_auth=f"Token {TOKEN}")
    assert fetch("/data/upload/1/a.png", LabelStudioAccess(file_server.url, TOKEN)) == PNG
    local = "/data/local-files/?d=dir/a.png"
    file_server.routes[local] = Route(body=PNG, require_auth=f"Token {TOKEN}")
    assert fetch(local, LabelStudioAccess(file_server.url, TOKEN)) == PNG


def test_without_the_key_label_studio_says_401_and_we_say_how_to_fix(file_server: FileServer):
    file_server.routes["/data/upload/1/a.png"] = Route(body=PNG, require_auth=f"Token {TOKEN}")
    with pytest.raises(MediaError, match="LABEL_STUDIO_API_KEY"):
        fetch("/data/upload/1/a.png", LabelStudioAccess(file_server.url, None))


def test_cloud_uri_is_presigned_through_label_studio(file_server: FileServer):
    uri = "s3://bucket/photos/a.png"
    encoded = base64.urlsafe_b64encode(uri.encode()).decode()
    file_server.routes[f"/tasks/7/presign/?fileuri={encoded}"] = Route(
        status=303, headers={"Location": "/signed/a.png?X-Signature=abc"}, require_auth=f"Token {TOKEN}"
    )
    file_server.routes["/signed/a.png?X-Signature=abc"] = Route(body=PNG)
    assert fetch(uri, LabelStudioAccess(file_server.url, TOKEN), task_id=7) == PNG
    # The key goes to Label Studio only, never to the presigned target.
    assert file_server.seen[-1] == ("/signed/a.png?X-Signature=abc", None)


def test_absolute_url_on_label_studio_host_gets_key_allowed_host_does_not(file_server: FileServer):
    file_server.routes["/data/upload/2/b.png"] = Route(body=PNG, require_auth=f"Token {TOKEN}")
    ls = LabelStudioAccess(file_server.url, TOKEN)
    assert fetch(f"{file_server.url}/data/upload/2/b.png", ls) == PNG
    file_server.routes["/public/b.png"] = Route(body=PNG)
    other = LabelStudioAccess("http://127.0.0.2:1", TOKEN)
    assert fetch(f"{file_server.url}/public/b.png", other, allowed_hosts=[f"127.0.0.1:{file_server.port}"]) == PNG
    assert file_server.seen[-1] == ("/public/b.png", None)


@pytest.mark.parametrize(
    "ref",
    [
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "https://example.com/a.png",
        "//evil.example/a.png",
        "data:image/png;base64,AAAA",
        "ftp://127.0.0.1/a.png",
        "/data/upload/../../etc/passwd",
        "http://user:pass@127.0.0.1/a.png",
        "relative/a.png",
        "gopher://127.0.0.1:70/",
    ],
)

def test_hostile_references_are_refused_before_any_request(ref: str, file_server: FileServer):
    ls = LabelStudioAccess("http://127.0.0.9:9", TOKEN)  # nothing listens there
    with pytest.raises(HostNotAllowed):
        fetch(ref, ls)
    assert file_server.seen == []


def test_redirects_are_not_followed_for_plain_urls(file_server: FileServer):
    file_server.routes["/data/upload/1/r.png"] = Route(status=302, headers={"Location": "http://169.254.169.254/"})
    with pytest.raises(MediaError, match="HTTP 302"):
        fetch("/data/upload/1/r.png", LabelStudioAccess(file_server.url, TOKEN))


def test_missing_image_is_a_clear_404(file_server: FileServer):
    with pytest.raises(MediaError, match="HTTP 404"):
        fetch("/data/upload/1/missing.png", LabelStudioAccess(file_server.url, TOKEN))


def test_size_cap_by_header_and_by_stream(file_server: FileServer):
    big = b"x" * 5000
    file_server.routes["/data/upload/1/big.png"] = Route(body=big)
    with pytest.raises(MediaError, match="limit"):
        fetch("/data/upload/1/big.png", LabelStudioAccess(file_server.url, TOKEN), max_bytes=1000)
    # A server that does not announce its length is cut off while streaming.
    file_server.routes["/data/upload/1/unsized.png"] = Route(body=big, send_length=False)
    with pytest.raises(MediaError, match="exceeds"):
        fetch("/data/upload/1/unsized.png", LabelStudioAccess(file_server.url, TOKEN), max_bytes=1000)


def test_timeout(file_server: FileServer):
    file_server.routes["/data/upload/1/slow.png"] = Route(body=PNG, delay_s=2.0)
    with pytest.raises(MediaError, match="timed out"):
        fetch("/data/upload/1/slow.png", LabelStudioAccess(file_server.url, TOKEN), timeout_s=0.3)


def test_slow_drip_is_cut_at_the_whole_download_deadline(file_server: FileServer):
    # Each byte arrives well within any per-read timeout, so only a deadline over the
    # whole body stops a server that would take 12 s to send 40 bytes.
    file_server.routes["/data/upload/1/drip.png"] = Route(body=b"x" * 40, drip_s=0.3)
    started = time.monotonic()
    with pytest.raises(MediaError, match="timed out"):
        fetch("/data/upload/1/drip.png", LabelStudioAccess(file_server.url, TOKEN), timeout_s=1.0)
    assert time.monotonic() - started < 6.0  # half the drip: the deadline, not the server, ended it


def test_unreachable_host():
    with pytest.raises(MediaError, match="cannot download"):
        fetch("/data/upload/1/a.png", LabelStudioAccess("http://127.0.0.1:1", TOKEN))


def test_personal_access_token_is_exchanged_for_a_bearer_token(file_server: FileServer):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).decode().rstrip("=")
    pat = f"{header}.e30.c2ln"

    def refresh(body: bytes) -> tuple[int, bytes]:
        if json.loads(body).get("refresh") == pat:
            return 200, json.dumps({"access": "ACCESS"}).encode()
        return 401, b'{"detail": "bad token"}'

    file_server.post_routes["/api/token/refresh/"] = refresh
    file_server.routes["/data/upload/1/a.png"] = Route(body=PNG, require_auth="Bearer ACCESS")
    assert fetch("/data/upload/1/a.png", LabelStudioAccess(file_server.url, pat)) == PNG
    with pytest.raises(MediaError, match="personal access token"):
        fetch("/data/upload/1/a.png", LabelStudioAccess(file_server.url, f"{header}.e30.d3Jvbmc"))


class TestAllowedPaths:
    def test_inside_root(self, tmp_path: Path):
        (tmp_path / "a.png").write_bytes(PNG)
        assert resolve_allowed_path(tmp_path / "a.png", [tmp_path]) == (tmp_path / "a.png").resolve()

    def test_escapes_and_disabled(self, tmp_path: Path):
        root = tmp_path / "root"
        root.mkdir()
        outside = tmp_path / "secret.png"
        outside.write_bytes(PNG)
        os.symlink(outside, root / "link.png")
        with pytest.raises(HostNotAllowed):
            resolve_allowed_path(root / ".." / "secret.png", [root])
        with pytest.raises(HostNotAllowed):
            resolve_allowed_path(root / "link.png", [root])
        with pytest.raises(HostNotAllowed, match="disabled"):
            resolve_allowed_path(outside, [])
        with pytest.raises(MediaError, match="not found"):
            resolve_allowed_path(root / "nope.png", [root])
        with pytest.raises(MediaError, match="not a regular file"):
            resolve_allowed_path(root, [root])
