"""The Label Studio REST calls the review round and the server make, on label-studio-sdk's client.

`label_studio_sdk.LabelStudio` (SDK 2.x) does the calls: projects, tasks page by page,
task import, local-files storages, file uploads, users, the JSON export, ML connections,
and the key: a legacy token goes as `Authorization: Token ...`; a personal access token
(a JWT refresh token) is traded at `/api/token/refresh/` for short-lived access tokens,
again whenever the SDK sees from its `exp` claim that the one it holds has expired. The
Label Studio ML backend itself moved its token handling onto this client, so one
maintained implementation of it serves everybody.

What stays ours, and why:
- the one-line `LabelStudioError`s that name the call and never hold the key: the SDK's
  `ApiError` prints response headers and a raw body, and connection errors come out of it
  as bare httpx exceptions;
- answers as Label Studio's own JSON (each call's raw response, not the SDK's pydantic
  models, which fill in fields Label Studio did not send and turn dates into objects);
- bounded paging: the SDK's pager asks for the next page for as long as a page has items,
  so a proxy that drops the `page` parameter would loop for ever; `_pages` stops it;
- one retry after a 401 with a fresh access token: the SDK decides expiry on its own clock,
  and a clock behind the server's would otherwise fail every call until it catches up;
- no automatic retries of writes (the SDK retries 5xx/409/connection errors twice): an
  import whose answer was lost must not create its tasks twice;
- `upload_files`: the SDK's `import_tasks` sends task JSON only, and no SDK method posts
  the multipart upload of image files *without creating tasks* (`commit_to_project=false`)
  that the review round uses for images outside the local-files root. That one request
  goes through the SDK's own HTTP client (`_client_wrapper.httpx_client`, what its
  generated methods call), so it gets the same URL handling and token refresh.

The server's media fetch does not come here: it is guarded and routes each key only to the
Label Studio it belongs to (`backend.serving.media`).
"""
from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from label_studio_sdk.core.api_error import ApiError

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

from .tokens import is_personal_access_token

__all__ = ["LabelStudioClient", "LabelStudioError"]

_PAGE_SIZE = 100
# 1,000,000 items at _PAGE_SIZE: past any real project; a server that says `next` for ever stops here.
_MAX_PAGES = 10_000
_NO_RETRY = {"max_retries": 0}  # request options of every write (see the module docstring)
T = TypeVar("T")


class LabelStudioError(ValueError):
    """Label Studio refused a call or could not be reached (a ValueError, like the plugin's input errors,
    so the command line and the operators show its message). `status`: Label Studio's HTTP status, if it answered."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _raw(answer: Any) -> Any:
    """Label Studio's JSON from an SDK `with_raw_response` answer (None for an empty body)."""
    response = answer.response
    return response.json() if response.content else None


def _plain(item: Any) -> Any:
    """An SDK model of a paged item as the JSON Label Studio sent (the fields it set, dates as strings)."""
    return item.model_dump(mode="json", by_alias=True, exclude_unset=True) if hasattr(item, "model_dump") else item


class LabelStudioClient:
    """One Label Studio server; use as a context manager (closes the connection pool)."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 120.0) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise LabelStudioError(f"Label Studio URL must start with http:// or https://, not {url!r} "
                                   "(set the LABEL_STUDIO_URL secret)")
        api_key = (api_key or "").strip()  # a secret pasted with its line break
        if not api_key:
            raise LabelStudioError("No Label Studio API key: set the LABEL_STUDIO_API_KEY secret "
                                   "(Account & Settings > Legacy token)")
        if not (api_key.isascii() and api_key.isprintable()) or any(c.isspace() for c in api_key):
            # httpx would refuse it as a header value and quote it in its error
            raise LabelStudioError("The Label Studio API key holds characters no key has (spaces, control or "
                                   "non-ASCII characters); check LABEL_STUDIO_API_KEY")
        self.url = url.rstrip("/")
        self._key = api_key  # kept only to scrub it from messages (the SDK holds the one it sends)
        self._personal = is_personal_access_token(api_key)
        # Our own pool: no proxies from the environment (the key goes to this server only), no redirects.
        self._http = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
        from label_studio_sdk import LabelStudio  # here, not at the top: it takes ~1 s (pandas), and the
        # plugin imports this module for LabelStudioError on every start
        try:
            # The trailing slash: the SDK joins its token-refresh path with urljoin, which drops
            # the last segment of a base URL without one (a Label Studio under /some/prefix).
            self._sdk = LabelStudio(base_url=self.url + "/", api_key=api_key, httpx_client=self._http,
                                    timeout=timeout)
        except ApiError as e:  # an expired personal access token, or a JWT without an expiry
            self._http.close()
            raise LabelStudioError(self._scrub(f"Label Studio key refused before any call: {_detail(e)}; "
                                               "check LABEL_STUDIO_API_KEY")) from None

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def sdk(self) -> LabelStudio:
        """The SDK client itself, for calls this class does not wrap (its errors are the SDK's)."""
        return self._sdk

    def _call(self, call: str, send: Callable[[], T]) -> T:
        """Run one SDK call; every failure becomes a one-line LabelStudioError naming `call`."""
        for attempt in (1, 2):
            try:
                return send()
            except ApiError as e:
                if e.status_code == 401 and attempt == 1 and self._forget_access_token():
                    continue  # the access token expired by the server's clock: trade the key again, once
                raise LabelStudioError(self._scrub(self._refusal(call, e)), status=e.status_code) from None
            except httpx.HTTPError as e:  # also what httpx says of a key that is no valid header value
                raise LabelStudioError(self._scrub(f"Label Studio at {self.url} cannot be reached "
                                                   f"({type(e).__name__}: {e})")) from None
            except json.JSONDecodeError:
                raise LabelStudioError(f"Label Studio {call} answered something that is not JSON "
                                       f"(is {self.url} a Label Studio?)") from None
        raise AssertionError("unreachable")

    def _scrub(self, message: str) -> str:
        """The message, one line, without the key (whatever an error quoted)."""
        return " ".join(message.replace(self._key, "<LABEL_STUDIO_API_KEY>").split())

    def _forget_access_token(self) -> bool:
        """Drop the SDK's cached access token so that the next call trades the key again; False for a
        legacy token (nothing to refresh) or an SDK whose token cache moved."""
        tokens = getattr(self._sdk._client_wrapper, "_tokens_client", None)
        if not self._personal or tokens is None or not getattr(tokens, "_access_token", None):
            return False
        tokens._access_token = None
        return True

    def _refusal(self, call: str, e: ApiError) -> str:
        if e.status_code == 401:
            kind = "personal access token" if self._personal else "API key"
            return (f"Label Studio at {self.url} rejected the {kind} (401); check LABEL_STUDIO_API_KEY "
                    "(legacy tokens must be enabled on the server)")
        return f"Label Studio {call} answered {e.status_code}: {_detail(e)[:500]}"

    # --- projects -----------------------------------------------------------------------------

    def projects(self) -> list[dict[str, Any]]:
        return list(self._pages("GET /api/projects/", lambda: self._sdk.projects.list(page_size=_PAGE_SIZE)))

    def project(self, project_id: int) -> dict[str, Any]:
        return self._call(f"GET /api/projects/{project_id}/",
                          lambda: _raw(self._sdk.projects.with_raw_response.get(project_id)))

    def create_project(self, title: str, label_config: str, **extra: Any) -> dict[str, Any]:
        return self._call("POST /api/projects/", lambda: _raw(self._sdk.projects.with_raw_response.create(
            title=title, label_config=label_config, **extra, request_options=_NO_RETRY)))

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return self._call(f"PATCH /api/projects/{project_id}/", lambda: _raw(
            self._sdk.projects.with_raw_response.update(project_id, **fields, request_options=_NO_RETRY)))

    # --- model connections (the server's version sync) ----------------------------------------

    def ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        """The project's ML backend connections (title, url, model_version, ...)."""
        return self._call(f"GET /api/ml/?project={project_id}",
                          lambda: _raw(self._sdk.ml.with_raw_response.list(project=project_id)))

    def update_ml_backend(self, backend_id: int, **fields: Any) -> dict[str, Any]:
        return self._call(f"PATCH /api/ml/{backend_id}", lambda: _raw(
            self._sdk.ml.with_raw_response.update(backend_id, **fields, request_options=_NO_RETRY)))

    # --- storage and uploads ------------------------------------------------------------------

    def local_storages(self, project_id: int) -> list[dict[str, Any]]:
        return self._call(f"GET /api/storages/localfiles/?project={project_id}",
                          lambda: _raw(self._sdk.import_storage.local.with_raw_response.list(project=project_id)))

    def add_local_storage(self, project_id: int, path: str, title: str) -> dict[str, Any]:
        """A local-files storage lets Label Studio serve files under `path` (no sync: tasks come by import)."""
        return self._call("POST /api/storages/localfiles/", lambda: _raw(
            self._sdk.import_storage.local.with_raw_response.create(
                project=project_id, path=path, title=title, use_blob_urls=False, regex_filter="",
                request_options=_NO_RETRY)))

    def upload_files(self, project_id: int, files: Sequence[tuple[str, Path]]) -> list[int]:
        """Upload `(name, path)` files without creating tasks; returns their file-upload ids.

        Each file goes in its own multipart part named after it: Label Studio keeps only
        the last file of parts that share a name. (No SDK method does this: module docstring.)
        """
        call = f"POST /api/projects/{project_id}/import?commit_to_project=false"
        handles = []
        try:
            parts = {}
            for name, path in files:
                handle = open(path, "rb")  # noqa: SIM115 (closed below, after the request)
                handles.append(handle)
                parts[name] = (name, handle, mimetypes.guess_type(name)[0] or "application/octet-stream")

            def send() -> Any:
                for handle in handles:
                    handle.seek(0)  # a retry after a refreshed token sends every file from the start
                response = self._sdk._client_wrapper.httpx_client.request(
                    f"api/projects/{project_id}/import", method="POST", params={"commit_to_project": False},
                    files=parts, request_options=_NO_RETRY)
                if not 200 <= response.status_code < 300:
                    raise ApiError(status_code=response.status_code, body=response.text)
                return response.json()

            answer = self._call(call, send)
        finally:
            for handle in handles:
                handle.close()
        return list(answer.get("file_upload_ids") or [])

    def file_uploads(self, project_id: int) -> list[dict[str, Any]]:
        """Every file uploaded to the project (`file` is the path under Label Studio's upload folder)."""
        return self._call(f"GET /api/projects/{project_id}/file-uploads",
                          lambda: _raw(self._sdk.files.with_raw_response.list(project_id, all_=True)))

    # --- tasks and annotations ----------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        """Create tasks (with their predictions) in one transaction; returns the new task ids in order."""
        answer = self._call(f"POST /api/projects/{project_id}/import", lambda: _raw(
            self._sdk.projects.with_raw_response.import_tasks(project_id, request=tasks, return_task_ids=True,
                                                              request_options=_NO_RETRY)))
        ids = list((answer or {}).get("task_ids") or [])
        if len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio created {len(ids)} tasks for {len(tasks)} sent")
        return ids

    def tasks(self, project_id: int, *, fields: str = "all") -> Iterator[dict[str, Any]]:
        """Every task of the project, page by page (`fields=all` includes annotations and predictions)."""
        return self._pages("GET /api/tasks/", lambda: self._sdk.tasks.list(
            project=project_id, fields=fields, page_size=_PAGE_SIZE))

    def export_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task with its annotations (the JSON export, including tasks without any)."""
        return self._call(f"GET /api/projects/{project_id}/export", lambda: json.loads(b"".join(
            self._sdk.projects.exports.download_sync(project_id, export_type="JSON", download_all_tasks=True))))

    def users(self) -> dict[int, str]:
        """User id -> email, to name reviewers."""
        listed = self._call("GET /api/users/", lambda: _raw(self._sdk.users.with_raw_response.list()))
        return {user["id"]: user.get("email") or user.get("username") or str(user["id"]) for user in listed}

    def _pages(self, call: str, first: Callable[[], Any]) -> Iterator[dict[str, Any]]:
        """Items of an SDK pager, bounded against a server that never stops saying `next`: at most
        `_MAX_PAGES` pages, no more items than the `count`/`total` it announced, and a page whose
        `next` link or items repeat an earlier page's ends in an error. The SDK fetches a page only
        when its iterator is asked for it, so stopping here stops the requests."""
        pager = self._call(call, first)
        seen_next, seen_ids, yielded, page = set(), set(), 0, 0
        while pager is not None:
            page += 1
            items = [_plain(item) for item in pager.items or []]
            ids = {item.get("id") for item in items if isinstance(item, dict) and item.get("id") is not None}
            if ids and ids <= seen_ids:
                raise LabelStudioError(f"Label Studio's {call} answered page {page} with items of an earlier page; "
                                       "stopped paging (is a proxy rewriting the page parameter?)")
            seen_ids |= ids
            yield from items
            yielded += len(items)
            # The page's own fields (those Label Studio sent, a proxy's `next` too: the SDK keeps extras).
            meta = {k: getattr(pager.response, k) for k in ("next", "total", "count") if hasattr(pager.response, k)}
            if len(items) < _PAGE_SIZE or not meta.get("next", True):
                return
            announced = next((meta[k] for k in ("total", "count") if isinstance(meta.get(k), int)), None)
            if announced is not None and yielded >= announced:
                return
            link = meta.get("next")
            if isinstance(link, str):
                if link in seen_next:
                    raise LabelStudioError(f"Label Studio's {call} gave the same next page twice ({link}); "
                                           "stopped paging")
                seen_next.add(link)
            if page >= _MAX_PAGES:
                raise LabelStudioError(f"Label Studio's {call} still said there was a next page after {page} pages "
                                       f"of {_PAGE_SIZE}; stopped paging")
            pager = self._call(call, partial(_next_page, pager))


def _next_page(pager: Any) -> Any:
    """The SDK pager's next page; None past the last (Label Studio answers 404 there)."""
    if not pager.has_next or pager.get_next is None:
        return None
    try:
        return pager.get_next()
    except ApiError as e:
        if e.status_code == 404:
            return None
        raise


def _detail(e: ApiError) -> str:
    """Label Studio's answer in an SDK error, as one line (the SDK's own str() includes headers)."""
    body = e.body
    if isinstance(body, dict) and isinstance(body.get("detail"), str):  # Label Studio's error shape
        body = {k: body[k] for k in ("detail", "validation_errors") if body.get(k)}
        if len(body) == 1:
            return body["detail"]
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return " ".join(text.split())
