"""A small Label Studio REST client: the handful of calls the review round needs.

Plain httpx against the documented REST API, with a legacy `Token` key or a personal
access token (traded for short-lived access tokens, again when one expires; which kind a key
is: `tokens.is_personal_access_token`). Why not label-studio-sdk's client, which does
projects, tasks, import, pagination and the token refresh too: the plugin installs with
httpx alone (the SDK brings pydantic models for Label Studio's whole API, and its generated
request models change between major versions, while these endpoints have been stable since
Label Studio 1.x), and the SDK's import takes task JSON, not the multipart upload of files
without creating tasks that the review round uses for images outside the local-files root.
The server, which installs the SDK anyway, uses it for label configs
(`backend.labelstudio.config`); its guarded, credential-routing media fetch is its own
(`backend.serving.media`) because a key must only ever go to the Label Studio it belongs to.

Every failure becomes a `LabelStudioError` that names the call and quotes Label Studio's
answer, so the operator can show it; the key never appears in a message.
"""
from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from .tokens import is_personal_access_token

__all__ = ["LabelStudioClient", "LabelStudioError"]

_PAGE_SIZE = 100
# 1,000,000 items at _PAGE_SIZE: past any real project; a server that says `next` for ever stops here.
_MAX_PAGES = 10_000


class LabelStudioError(ValueError):
    """Label Studio refused a call or could not be reached (a ValueError, like the plugin's input errors,
    so the command line and the operators show its message)."""


class LabelStudioClient:
    """One Label Studio server; use as a context manager (closes the connection pool)."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 120.0) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise LabelStudioError(f"Label Studio URL must start with http:// or https://, not {url!r} "
                                   "(set the LABEL_STUDIO_URL secret)")
        if not api_key:
            raise LabelStudioError("No Label Studio API key: set the LABEL_STUDIO_API_KEY secret "
                                   "(Account & Settings > Legacy token)")
        self.url = url.rstrip("/")
        # A personal access token (a JWT) is a refresh token: it is traded for short-lived
        # access tokens, again whenever Label Studio says the current one expired.
        self._refresh_token = api_key if is_personal_access_token(api_key) else None
        self._http = httpx.Client(base_url=self.url, timeout=timeout, trust_env=False,
                                  headers={} if self._refresh_token else {"Authorization": f"Token {api_key}"})
        if self._refresh_token:
            self._refresh_access()

    def _refresh_access(self) -> None:
        try:
            response = self._http.post("/api/token/refresh/", json={"refresh": self._refresh_token})
        except httpx.HTTPError as e:
            raise LabelStudioError(f"Label Studio at {self.url} cannot be reached ({type(e).__name__}: {e})") from None
        access = response.json().get("access") if response.status_code == 200 else None
        if not access:
            raise LabelStudioError(f"Label Studio at {self.url} refused the personal access token "
                                   f"({response.status_code}); check LABEL_STUDIO_API_KEY")
        self._http.headers["Authorization"] = f"Bearer {access}"

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, expect: Sequence[int] = (200, 201), **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code == 401 and self._refresh_token:
            self._refresh_access()  # the access token expired during a long job
            for _, (_, handle, _) in kwargs.get("files") or ():
                handle.seek(0)  # an upload is sent again from the start
            response = self._send(method, path, **kwargs)
        if response.status_code == 401:
            raise LabelStudioError(f"Label Studio at {self.url} rejected the API key (401); check "
                                   "LABEL_STUDIO_API_KEY (legacy tokens must be enabled on the server)")
        if response.status_code not in expect:
            raise LabelStudioError(f"Label Studio {method} {path} answered {response.status_code}: "
                                   f"{response.text[:500]}")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise LabelStudioError(f"Label Studio at {self.url} cannot be reached ({type(e).__name__}: {e})") from None

    # --- projects -----------------------------------------------------------------------------

    def projects(self) -> list[dict[str, Any]]:
        return list(self._pages("/api/projects", "results", {}))

    def project(self, project_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/projects/{project_id}")

    def create_project(self, title: str, label_config: str, **extra: Any) -> dict[str, Any]:
        return self._call("POST", "/api/projects", json={"title": title, "label_config": label_config, **extra})

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/api/projects/{project_id}", json=fields)

    # --- storage and uploads ------------------------------------------------------------------

    def local_storages(self, project_id: int) -> list[dict[str, Any]]:
        return self._call("GET", "/api/storages/localfiles", params={"project": project_id})

    def add_local_storage(self, project_id: int, path: str, title: str) -> dict[str, Any]:
        """A local-files storage lets Label Studio serve files under `path` (no sync: tasks come by import)."""
        return self._call("POST", "/api/storages/localfiles",
                          json={"project": project_id, "path": path, "title": title, "use_blob_urls": False,
                                "regex_filter": ""})

    def upload_files(self, project_id: int, files: Sequence[tuple[str, Path]]) -> list[int]:
        """Upload `(name, path)` files without creating tasks; returns their file-upload ids.

        Each file goes in its own multipart part named after it: Label Studio keeps only
        the last file of parts that share a name.
        """
        handles = []
        try:
            parts = []
            for name, path in files:
                handle = open(path, "rb")  # noqa: SIM115 (closed below, after the request)
                handles.append(handle)
                parts.append((name, (name, handle, mimetypes.guess_type(name)[0] or "application/octet-stream")))
            answer = self._call("POST", f"/api/projects/{project_id}/import",
                                params={"commit_to_project": "false"}, files=parts)
        finally:
            for handle in handles:
                handle.close()
        return list(answer.get("file_upload_ids") or [])

    def file_uploads(self, project_id: int) -> list[dict[str, Any]]:
        """Every file uploaded to the project (`file` is the path under Label Studio's upload folder)."""
        return self._call("GET", f"/api/projects/{project_id}/file-uploads", params={"all": "true"})

    # --- tasks and annotations ----------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        """Create tasks (with their predictions) in one transaction; returns the new task ids in order."""
        answer = self._call("POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"},
                            content=json.dumps(tasks), headers={"Content-Type": "application/json"})
        ids = list(answer.get("task_ids") or [])
        if len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio created {len(ids)} tasks for {len(tasks)} sent")
        return ids

    def tasks(self, project_id: int, *, fields: str = "all") -> Iterator[dict[str, Any]]:
        """Every task of the project, page by page (`fields=all` includes annotations and predictions)."""
        return self._pages("/api/tasks", "tasks", {"project": project_id, "fields": fields})

    def export_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task with its annotations (the JSON export, including tasks without any)."""
        return self._call("GET", f"/api/projects/{project_id}/export",
                          params={"exportType": "JSON", "download_all_tasks": "true"})

    def users(self) -> dict[int, str]:
        """User id -> email, to name reviewers."""
        return {user["id"]: user.get("email") or user.get("username") or str(user["id"])
                for user in self._call("GET", "/api/users")}

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Items of a paged list. Bounded against a server that never stops saying `next`:
        at most `_MAX_PAGES` pages, no more items than the `count`/`total` it announced,
        and a page whose `next` link or items repeat an earlier page's ends in an error."""
        page, seen_next, seen_ids, yielded = 1, set(), set(), 0
        while True:
            answer = self._call("GET", path, params={**params, "page": page, "page_size": _PAGE_SIZE},
                                expect=(200, 404))
            if answer is None or (isinstance(answer, dict) and "detail" in answer and key not in answer):
                return  # Label Studio answers 404 past the last page
            items = answer if isinstance(answer, list) else answer.get(key) or []
            ids = {item.get("id") for item in items if isinstance(item, dict) and item.get("id") is not None}
            if ids and ids <= seen_ids:
                raise LabelStudioError(f"Label Studio's {path} answered page {page} with items of an earlier page; "
                                       "stopped paging (is a proxy rewriting the page parameter?)")
            seen_ids |= ids
            yield from items
            yielded += len(items)
            if isinstance(answer, list) or len(items) < _PAGE_SIZE or not answer.get("next", True):
                return
            announced = next((answer[k] for k in ("total", "count") if isinstance(answer.get(k), int)), None)
            if announced is not None and yielded >= announced:
                return
            link = answer.get("next")
            if isinstance(link, str):
                if link in seen_next:
                    raise LabelStudioError(f"Label Studio's {path} gave the same next page twice ({link}); "
                                           "stopped paging")
                seen_next.add(link)
            if page >= _MAX_PAGES:
                raise LabelStudioError(f"Label Studio's {path} still said there was a next page after {page} pages "
                                       f"of {_PAGE_SIZE}; stopped paging")
            page += 1
