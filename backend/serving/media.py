"""Fetch task images: only what `media_refs.plan_fetch` allows, within hard limits.

`media_refs` decides where a reference may go and whether Label Studio's key goes
with it; this module does the requests: no redirects except the one from Label
Studio's presign endpoint (followed without the key), a deadline over the whole
download (a server that drips bytes cannot hold a request past it), and a size cap.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urljoin

import httpx

from ram_client.labelstudio.tokens import is_personal_access_token

from ..errors import BadRequest, HostNotAllowed, MediaError
from .media_refs import FetchPlan, Origin, normalise_allowed_host, parse_origin, plan_fetch, redact_url, split_origin

__all__ = ["LabelStudioAccess", "MediaFetcher", "redact_url", "resolve_allowed_path"]

_JWT_REFRESH_MARGIN_S = 60.0
_ACCESS_TOKEN_LIFETIME_S = 240.0  # Label Studio's access tokens last 5 minutes
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class LabelStudioAccess:
    """Where Label Studio is and the key to read its files with (legacy token or PAT).

    The URL and the key always travel together: they come both from the server's
    configuration or both from one `/setup` call, never one from each.
    """

    url: str | None
    token: str | None = None

    @cached_property
    def origin(self) -> Origin | None:
        return parse_origin(self.url, what="Label Studio URL", allow_path=True) if self.url else None

    @property
    def base_url(self) -> str | None:
        return self.origin.url() if self.origin else None


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
    except (OSError, RuntimeError, ValueError) as exc:
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
        timeout_s: deadline for each download, whole body included.
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
        self.allowed_hosts = frozenset(normalise_allowed_host(h) for h in allowed_hosts if h.strip())
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
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

    def plan(self, ref: str, *, task_id: int | None, ls: LabelStudioAccess) -> FetchPlan:
        """Where `ref` would be fetched from, and with which key; raises when refused."""
        return plan_fetch(ref, task_id=task_id, label_studio=ls.origin, allowed_hosts=self.allowed_hosts)

    async def fetch(self, ref: str, *, task_id: int | None = None, ls: LabelStudioAccess) -> bytes:
        plan = self.plan(ref, task_id=task_id, ls=ls)
        try:
            return await asyncio.wait_for(self._fetch(plan, ls), timeout=self.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise MediaError(f"timed out downloading {redact_url(plan.url)} (limit {self.timeout_s:g} s)") from None
        except httpx.HTTPError as exc:
            raise MediaError(f"cannot download {redact_url(plan.url)}: {type(exc).__name__}") from None

    async def _fetch(self, plan: FetchPlan, ls: LabelStudioAccess) -> bytes:
        url = plan.url
        headers = await self._auth_headers(ls) if plan.with_key else {}
        data, status, location = await self._get(url, headers)
        if status == 401 and plan.with_key and ls.token and is_personal_access_token(ls.token):
            self._access_tokens.pop((ls.base_url or "", ls.token), None)  # expired access token
            data, status, location = await self._get(url, await self._auth_headers(ls))
        if plan.follow_once and status in _REDIRECTS and location:
            url = self._redirect_target(url, location)
            data, status, _ = await self._get(url, {})
        if status in (401, 403):
            hint = (
                " (set LABEL_STUDIO_API_KEY to a legacy token or personal access token that can read this project)"
                if plan.with_key
                else ""
            )
            raise MediaError(f"download refused with HTTP {status}: {redact_url(url)}{hint}")
        if status != 200:
            raise MediaError(f"download failed with HTTP {status}: {redact_url(url)}")
        return data

    @staticmethod
    def _redirect_target(url: str, location: str) -> str:
        """Label Studio's presign answer points at the storage provider: any http(s)
        host, fetched without the key, with no credentials in the URL."""
        target = urljoin(url, location)
        try:
            split_origin(target, what="presign redirect")
        except BadRequest as exc:
            raise HostNotAllowed(exc.message) from None
        return target

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
        if not is_personal_access_token(ls.token):
            return {"Authorization": f"Token {ls.token}"}
        return {"Authorization": f"Bearer {await self._access_token(ls)}"}

    async def _access_token(self, ls: LabelStudioAccess) -> str:
        """Trade a personal access token (a refresh token) for a short-lived access token."""
        key = (ls.base_url or "", ls.token or "")
        async with self._token_lock:
            cached = self._access_tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            try:
                response = await self._client.post(f"{ls.base_url}/api/token/refresh/", json={"refresh": ls.token})
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
