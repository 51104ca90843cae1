"""`LabelStudioClient` (label-studio-sdk underneath) against the real Label Studio the tests start:
what goes in through it reads back through Label Studio's own API, what Label Studio holds reads
back through it as Label Studio's JSON, with a legacy token and with a personal access token,
whose access tokens are traded again when they expire; refusals are one line without the key."""
from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path

import pytest
from labelstudio_server import LabelStudio

from ram_client.labelstudio.client import LabelStudioClient, LabelStudioError
from ram_client.labelstudio.results import choice_item
from ram_client.labelstudio.tasks import choices_config

pytestmark = pytest.mark.labelstudio


def _tasks(n: int) -> list[dict]:
    return [{"data": {"image": f"/data/local-files/?d=x/{i}.jpg", "ram_sample_id": f"s{i}"},
             "predictions": [{"result": [{**choice_item("tags", "image", "choices", ["dog"]), "score": 0.25 + i / 1e3}],
                              "score": 0.25 + i / 1e3, "model_version": "random-ram_plus-test"}]}
            for i in range(n)]


def _requests_to(client: LabelStudioClient, path: str) -> list[str]:
    """Record the paths this client asks for that start with `path` (the client's own httpx pool)."""
    seen: list[str] = []
    client._http.event_hooks["request"].append(
        lambda request: seen.append(request.url.path) if request.url.path.startswith(path) else None)
    return seen


@pytest.mark.parametrize("kind", ["legacy token", "personal access token"])
def test_round_trips_both_ways_through_the_sdk(label_studio: LabelStudio, tmp_path: Path, kind: str) -> None:
    key = label_studio.token if kind == "legacy token" else label_studio.personal_access_token()
    sent = _tasks(105)  # more than one page of 100
    with LabelStudioClient(label_studio.url, key) as client, label_studio.client() as raw:
        project = client.create_project(f"client {kind} {time.time_ns()}", choices_config(["cat", "dog"]),
                                        model_version="", description="made through LabelStudioClient")
        # In: what the client made is what Label Studio's own API holds.
        assert raw.get(f"/api/projects/{project['id']}").json()["title"] == project["title"]
        ids = client.import_tasks(project["id"], sent)
        assert len(ids) == len(set(ids)) == 105
        for task_id, task in zip(ids[:3], sent[:3]):
            stored = raw.get(f"/api/tasks/{task_id}").json()
            assert stored["data"] == task["data"]
            (prediction,) = raw.get("/api/predictions", params={"task": task_id}).json()
            assert prediction["result"] == task["predictions"][0]["result"]
            assert prediction["model_version"] == "random-ram_plus-test"
        updated = client.update_project(project["id"], label_config=choices_config(["car", "cat", "dog"]))
        assert 'value="car"' in raw.get(f"/api/projects/{project['id']}").json()["label_config"]
        assert updated["id"] == project["id"]
        image = tmp_path / "up.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
        (upload_id,) = client.upload_files(project["id"], [("s1.png", image)])
        (upload,) = [u for u in client.file_uploads(project["id"]) if u["id"] == upload_id]
        assert raw.get("/data/" + upload["file"]).content == image.read_bytes()
        assert raw.get("/api/tasks", params={"project": project["id"]}).json()["total"] == 105  # no task made

        # Out: a review made in Label Studio reads back through the client as Label Studio's JSON.
        made = raw.post(f"/api/tasks/{ids[104]}/annotations", json={
            "result": [choice_item("tags", "image", "choices", ["cat"])], "lead_time": 1.5})
        assert made.status_code == 201, made.text
        listed = list(client.tasks(project["id"]))
        assert [t["id"] for t in listed] == ids
        page = raw.get("/api/tasks", params={"project": project["id"], "fields": "all", "page": 2,
                                             "page_size": 100}).json()["tasks"]
        assert listed[100:] == page  # the SDK's models give back exactly what Label Studio sent
        (annotation,) = listed[104]["annotations"]
        assert annotation["result"][0]["value"]["choices"] == ["cat"] and annotation["lead_time"] == 1.5
        exported = {t["id"]: t for t in client.export_tasks(project["id"])}
        assert len(exported) == 105 and exported[ids[104]]["annotations"][0]["id"] == annotation["id"]
        assert client.project(project["id"])["label_config"] == updated["label_config"]
        assert any(p["id"] == project["id"] for p in client.projects())
        assert client.users()[annotation["completed_by"]] == "ram-tests@example.com"
        assert client.local_storages(project["id"]) == []

        with pytest.raises(LabelStudioError, match=r"^Label Studio GET /api/projects/999999/ answered 404: No Project"):
            client.project(999999)


def _jwt(claims: dict) -> str:
    encode = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{encode({'alg': 'HS256', 'typ': 'JWT'})}.{encode(claims)}.c2lnbmF0dXJl"


def test_an_expired_access_token_is_traded_again(label_studio: LabelStudio, monkeypatch: pytest.MonkeyPatch) -> None:
    import label_studio_sdk.tokens.client_ext as sdk_tokens

    with LabelStudioClient(label_studio.url, label_studio.personal_access_token()) as client:
        refreshes = _requests_to(client, "/api/token/refresh/")
        client.projects()
        client.projects()
        assert len(refreshes) == 1  # one access token serves while it lasts

        # Ten minutes later by the SDK's clock, Label Studio's access token (5 minutes) has expired.
        class Later(dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return dt.datetime.now(tz) + dt.timedelta(minutes=10)

        monkeypatch.setattr(sdk_tokens, "datetime", Later)
        client.projects()
        assert len(refreshes) == 2
        monkeypatch.undo()

        # A clock behind the server's: the SDK still trusts an access token Label Studio refuses
        # (here one it never signed, expiring in a day); the client trades the key once more.
        client.sdk._client_wrapper._tokens_client._access_token = _jwt(
            {"token_type": "access", "exp": int(time.time()) + 86_400})
        assert isinstance(client.projects(), list)
        assert len(refreshes) == 3


def test_refused_keys_fail_in_one_line_without_the_key(label_studio: LabelStudio) -> None:
    legacy = "f" * 40
    with LabelStudioClient(label_studio.url, legacy) as client:
        with pytest.raises(LabelStudioError, match=r"rejected the API key \(401\)") as caught:
            client.projects()
    assert legacy not in str(caught.value) and "\n" not in str(caught.value)

    forged = _jwt({"token_type": "refresh", "exp": int(time.time()) + 86_400})
    with LabelStudioClient(label_studio.url, forged) as client:
        with pytest.raises(LabelStudioError, match=r"rejected the personal access token \(401\)") as caught:
            client.tasks(1).__next__()
    assert forged not in str(caught.value)

    for odd in ("secret key", "secret\x00key", "sécret"):
        with pytest.raises(LabelStudioError, match="characters no key has") as caught:
            LabelStudioClient(label_studio.url, odd)
        assert odd not in str(caught.value)
    with LabelStudioClient(label_studio.url, f"  {label_studio.token}\n") as client:  # pasted with a line break
        assert isinstance(client.users(), dict)

    expired = _jwt({"token_type": "refresh", "exp": int(time.time()) - 60})
    with pytest.raises(LabelStudioError, match="refused before any call: API key has expired") as caught:
        LabelStudioClient(label_studio.url, expired)
    assert expired not in str(caught.value)

    with LabelStudioClient(label_studio.url + "/nowhere", label_studio.token) as client:
        with pytest.raises(LabelStudioError, match=r"^Label Studio GET /api/users/ answered 404: ") as caught:
            client.users()
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 600


def test_writes_are_not_retried_but_reads_are(label_studio: LabelStudio) -> None:
    """The SDK retries a connection error; a write whose answer may have been lost must not be sent
    twice (an import would make its tasks twice), so writes fail at the first error."""
    with LabelStudioClient(f"http://127.0.0.1:{_closed_port()}", label_studio.token, timeout=5) as client:
        attempts = _requests_to(client, "/api/")
        with pytest.raises(LabelStudioError, match="cannot be reached"):
            client.import_tasks(1, _tasks(1))
        assert attempts == ["/api/projects/1/import"]
        attempts.clear()
        with pytest.raises(LabelStudioError, match="cannot be reached"):
            client.project(1)
        assert len(attempts) == 3


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_label_studio_under_a_path_prefix_refreshes_there(label_studio: LabelStudio) -> None:
    """The SDK joins its refresh path with urljoin; the client's base URL keeps a prefix in it."""
    url = f"http://127.0.0.1:{_closed_port()}/prefix/ls"
    with LabelStudioClient(url, label_studio.personal_access_token(), timeout=2) as client:
        refreshes = _requests_to(client, "/")
        with pytest.raises(LabelStudioError, match="cannot be reached"):
            client.projects()
    assert refreshes and set(refreshes) == {"/prefix/ls/api/token/refresh/"}
