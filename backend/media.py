"""Fetch task images safely: only from Label Studio and explicitly allowed hosts/roots.

Task data is written by whoever can import tasks, and the server can reach networks
its users cannot, so every reference is classified before anything is fetched:
Label Studio-relative paths (`/data/upload/...`, `/data/local-files/?d=...`) and
cloud URIs (`s3://`, `gs://`, `azure-blob://`, presigned through Label Studio) go to
Label Studio with its API key; absolute http(s) URLs only to Label Studio's own host
or an allowed host (without the key); everything else (`file://`, `data:`, bare paths,
protocol-relative URLs) is refused. Redirects are not followed except the one from
Label Studio's presign endpoint, and every download has a timeout and a size cap.
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from .errors import BadRequest, HostNotAllowed, MediaError

__all__ = ["LabelStudioAccess", "MediaFetcher", "redact_url", "resolve_allowed_path"]

_CLOUD_SCHEMES = ("s3", "gs", "azure-blob", "azure-spi")
_JWT_REFRESH_MARGIN_S = 60.0
_ACCESS_TOKEN_LIFETIME_S = 240.0  # Label Studio's access tokens last 5 minutes


@dataclass(frozen=True)
class LabelStudioAccess:
    """Where Label Studio is and the key to read its files with (legacy token or PAT)."""

    url: str | None
    token: str | None = None

    @property
    def netloc(self) -> str | None:
        return urlsplit(self.url).netloc.lower() if self.url else None


def redact_url(url: str) -> str:
    """The URL without its query: presigned signatures and `?d=` paths stay out of logs."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}{parts.path}"
    return url.split("?", 1)[0][:200]


def _looks_like_jwt(token: str) -> bool:
    # Personal access tokens are JWT refresh tokens; legacy tokens are 40 hex chars.
    pieces = token.split(".")
    if len(pieces) != 3:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(pieces[0] + "=" * (-len(pieces[0]) % 4)))
    except (ValueError, json.JSONDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


def resolve_allowed_path(path: str | Path, roots: Sequence[Path]) -> Path:
    """Resolve `path` (symlinks included) and insist it lies under one of `roots`."""
    if not roots:
        raise HostNotAllowed(
            "reading server-side paths is disabled; start the server with --allowed-root DIR "
            "(RAM_ANNOTATE_ALLOWED_ROOTS) or send the image bytes"
        )
    text = str(path)
    if "\x00" in text:
        raise BadRequest("path contains a NUL byte")
    candidate = Path(text).expanduser()
    try:
        resolved = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise MediaError(f"file not found: {text}") from None
    except (OSError, RuntimeError) as exc:
        raise MediaError(f"cannot read {text}: {exc}") from None
    for root in roots:
        root_resolved = Path(root).expanduser().resolve()
        if resolved == root_resolved or root_resolved in resolved.parents:
            if not resolved.is_file():
                raise MediaError(f"not a regular file: {text}")
            return resolved
    raise HostNotAllowed(f"{text} is outside the allowed roots")


class MediaFetcher:
    """Downloads task images with one shared HTTP client.

    Args:
        allowed_hosts: hosts (`name` or `name:port`) that absolute URLs may point at,
            besides Label Studio itself; fetched without the API key.
        timeout_s: connect and read timeout of each download.
        max_bytes: downloads larger than this are abandoned.
    """

    def __init__(
        self,
        *,
        allowed_hosts: Sequence[str] = (),
        timeout_s: float = 10.0,
        max_bytes: int = 50 * 1024 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.allowed_hosts = {h.lower().strip() for h in allowed_hosts if h.strip()}
        self.max_bytes = max_bytes
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "ram-annotate"},
            trust_env=False,  # never route task downloads through an environment proxy
        )
        self._access_tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- classification -------------------------------------------------------------

    def resolve(self, ref: str, *, task_id: int | None, ls: LabelStudioAccess) -> tuple[str, bool, bool]:
        """(URL to fetch, send Label Studio's key?, follow one redirect?) or raise."""
        if not isinstance(ref, str) or not ref.strip():
            raise MediaError("the task has no image reference")
        ref = ref.strip()
        scheme = ref.split(":", 1)[0].lower() if ":" in ref.split("/", 1)[0] else ""
        if scheme in _CLOUD_SCHEMES:
            if not ls.url:
                raise MediaError(f"{redact_url(ref)} is in cloud storage; set LABEL_STUDIO_URL so it can be presigned")
            if task_id is None:
                raise MediaError("cloud storage images need the task id to be presigned by Label Studio")
            fileuri = base64.urlsafe_b64encode(ref.encode()).decode()
            return f"{ls.url}/tasks/{int(task_id)}/presign/?fileuri={fileuri}", True, True
        if scheme in ("http", "https"):
            parts = urlsplit(ref)
            netloc = parts.netloc.lower()
            host = (parts.hostname or "").lower()
            if parts.username or parts.password:
                raise HostNotAllowed(f"{redact_url(ref)}: URLs with credentials are not fetched")
            if ls.netloc and netloc == ls.netloc:
                return ref, True, False
            if netloc in self.allowed_hosts or host in self.allowed_hosts:
                return ref, False, False
            raise HostNotAllowed(
                f"{redact_url(ref)}: host {host!r} is neither Label Studio nor in --allowed-host "
                "(RAM_ANNOTATE_ALLOWED_HOSTS)"
            )
        if scheme:
            raise HostNotAllowed(f"{redact_url(ref)}: the {scheme!r} scheme is not fetched")
        if ref.startswith("/") and not ref.startswith("//"):
            if not ls.url:
                raise MediaError(
                    f"{redact_url(ref)} is a Label Studio path; set LABEL_STUDIO_URL (or connect from "
                    "Label Studio, which sends its hostname to /setup)"
                )
            if "\\" in ref or any(seg == ".." for seg in urlsplit(ref).path.split("/")):
                raise HostNotAllowed(f"{redact_url(ref)}: path escapes are not fetched")
            return urljoin(ls.url + "/", ref.lstrip("/")), True, False
        raise HostNotAllowed(f"{redact_url(ref)}: not an http(s) URL, cloud URI or Label Studio path")

    # -- fetching -------------------------------------------------------------------

    async def fetch(self, ref: str, *, task_id: int | None = None, ls: LabelStudioAccess) -> bytes:
        url, with_key, follow_once = self.resolve(ref, task_id=task_id, ls=ls)
        headers = await self._auth_headers(ls) if with_key else {}
        try:
            data, status, location = await self._get(url, headers)
            if status == 401 and with_key and ls.token and _looks_like_jwt(ls.token):
                self._access_tokens.pop((ls.url or "", ls.token), None)  # expired access token
                data, status, location = await self._get(url, await self._auth_headers(ls))
            if follow_once and status in (301, 302, 303, 307, 308) and location:
                target = urljoin(url, location)
                if urlsplit(target).scheme not in ("http", "https"):
                    raise HostNotAllowed(f"presign redirect to a non-http URL: {redact_url(target)}")
                data, status, _ = await self._get(target, {})
        except httpx.TimeoutException:
            raise MediaError(f"timed out downloading {redact_url(url)}") from None
        except httpx.HTTPError as exc:
            raise MediaError(f"cannot download {redact_url(url)}: {type(exc).__name__}") from None
        if status in (401, 403):
            hint = (
                " (set LABEL_STUDIO_API_KEY to a legacy token or personal access token that can read this project)"
                if with_key
                else ""
            )
            raise MediaError(f"download refused with HTTP {status}: {redact_url(url)}{hint}")
        if status != 200:
            raise MediaError(f"download failed with HTTP {status}: {redact_url(url)}")
        return data

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[bytes, int, str | None]:
        async with self._client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                return b"", response.status_code, response.headers.get("location")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise MediaError(
                    f"{redact_url(url)} is {int(declared)} bytes, over the {self.max_bytes}-byte limit"
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise MediaError(f"{redact_url(url)} exceeds the {self.max_bytes}-byte limit")
                chunks.append(chunk)
            return b"".join(chunks), 200, None

    async def _auth_headers(self, ls: LabelStudioAccess) -> dict[str, str]:
        if not ls.token:
            return {}
        if not _looks_like_jwt(ls.token):
            return {"Authorization": f"Token {ls.token}"}
        return {"Authorization": f"Bearer {await self._access_token(ls)}"}

    async def _access_token(self, ls: LabelStudioAccess) -> str:
        """Trade a personal access token (a refresh token) for a short-lived access token."""
        key = (ls.url or "", ls.token or "")
        async with self._token_lock:
            cached = self._access_tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            try:
                response = await self._client.post(f"{ls.url}/api/token/refresh/", json={"refresh": ls.token})
            except httpx.HTTPError as exc:
                raise MediaError(f"cannot reach Label Studio to refresh the access token: {type(exc).__name__}") from None
            if response.status_code != 200 or "access" not in response.json():
                raise MediaError(
                    f"Label Studio refused the personal access token (HTTP {response.status_code}); "
                    "check LABEL_STUDIO_API_KEY"
                )
            token = response.json()["access"]
            self._access_tokens[key] = (token, time.monotonic() + _ACCESS_TOKEN_LIFETIME_S - _JWT_REFRESH_MARGIN_S)
            return token
