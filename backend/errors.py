"""Typed errors and the one JSON error shape every route answers with.

Clients (Label Studio, the plugin, scripts) get a status code and a message that says
what to fix; tracebacks go to the log under a request id and never to the client.
"""
from __future__ import annotations

import logging
import re
import uuid
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "BackendError",
    "BadRequest",
    "HostNotAllowed",
    "LabelConfigError",
    "LabelConfigTooLarge",
    "MediaError",
    "Overloaded",
    "PayloadTooLarge",
    "error_body",
    "install_error_handlers",
]

_log = logging.getLogger("backend.errors")


class BackendError(Exception):
    """An error with an HTTP status and a stable machine-readable code.

    Each kind names both on its class line, `class X(BackendError, status_code=404, code="x")`,
    so a new kind is one declaration and the handler below answers for all of them.
    """

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init_subclass__(cls, *, status_code: int | None = None, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(BackendError, status_code=400, code="bad_request"):
    """The request is well-formed but asks for something the server cannot do."""


class LabelConfigError(BackendError, status_code=422, code="label_config"):
    """The labeling config cannot be served (no Image, no Choices/Taxonomy bound to one)."""


class LabelConfigTooLarge(LabelConfigError, status_code=413, code="label_config_too_large"):
    """The labeling config is over a size, element, depth, control or time limit."""


class MediaError(BackendError, status_code=422, code="media"):
    """One image could not be fetched or read; per-task errors carry this message."""


class HostNotAllowed(MediaError, status_code=403, code="host_not_allowed"):
    """A URL points outside Label Studio and the configured allow-list (SSRF guard)."""


class PayloadTooLarge(BackendError, status_code=413, code="too_large"):
    """The request is over a configured size (body bytes, tasks, images, config size)."""


class Overloaded(BackendError, status_code=503, code="overloaded"):
    """The batching queue is full; the client should retry after a short pause."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_BODY_ERROR_MESSAGE = (
    "request body cannot be decoded: JSON nested too deeply or a number too long to read (or a broken upload)"
)
# How pydantic names the members of a union in an error location ("Annotation",
# "list[Annotation]", "constrained-int", "str"); our own field names are snake_case.
_UNION_MEMBER = re.compile(r"^([A-Z]\w*|[\w-]+\[.*\]|constrained-\w+|str|int|float|bool|dict|list|function-\w+)$")


def _union_member(part: object) -> bool:
    return isinstance(part, str) and bool(_UNION_MEMBER.match(part))


def error_body(code: str, message: str, request_id: str | None = None) -> dict:
    # A message may quote what the client sent; a lone surrogate in it cannot be encoded
    # as UTF-8 and would turn a clean 4xx into a 500, so it is written as an escape.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body: dict = {"error": {"code": code, "message": message}}
    if request_id:
        body["error"]["request_id"] = request_id
    return body


def _request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex[:12]


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through `error_body` so clients parse one shape."""

    async def on_backend_error(request: Request, exc: BackendError) -> JSONResponse:
        rid = _request_id(request)
        _log.info("%s %s -> %d %s [%s]", request.method, request.url.path, exc.status_code, exc.message, rid)
        return JSONResponse(error_body(exc.code, exc.message, rid), status_code=exc.status_code, headers=exc.headers)

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        # Unparseable JSON is a different mistake from a well-formed body with a wrong
        # field, and deserves 400 rather than FastAPI's blanket 422.
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(error_body("malformed_json", "request body is not valid JSON"), status_code=400)
        parts: list[str] = []
        for e in errors:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body" and not _union_member(p))
            part = f"{loc or 'body'}: {e.get('msg')}"
            if part not in parts:
                parts.append(part)
        return JSONResponse(error_body("invalid_request", "; ".join(parts[:10])), status_code=422)

    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            # FastAPI's words when its JSON decoder gives up for a reason other than a
            # syntax error: nesting past Python's recursion limit, integers of thousands of digits.
            return JSONResponse(error_body("malformed_json", _BODY_ERROR_MESSAGE), status_code=400)
        return JSONResponse(
            error_body("http_error", str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = _request_id(request)
        _log.exception("unhandled error on %s %s [%s]", request.method, request.url.path, rid)
        return JSONResponse(
            error_body("internal", f"internal error; see the server log for request id {rid}", rid), status_code=500
        )

    app.add_exception_handler(BackendError, on_backend_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)
