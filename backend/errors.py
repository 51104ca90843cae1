"""Typed errors and the one JSON error shape every route answers with.

Clients (Label Studio, the plugin, scripts) get a status code and a message that says
what to fix; tracebacks go to the log under a request id and never to the client.
"""
from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "BackendError",
    "BadRequest",
    "HostNotAllowed",
    "LabelConfigError",
    "MediaError",
    "Overloaded",
    "error_body",
    "install_error_handlers",
]

_log = logging.getLogger("backend.errors")


class BackendError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(BackendError):
    status_code = 400
    code = "bad_request"


class LabelConfigError(BackendError):
    """The labeling config cannot be served (no Image, no Choices/Taxonomy bound to one)."""

    status_code = 422
    code = "label_config"


class MediaError(BackendError):
    """One image could not be fetched or read; per-task errors carry this message."""

    status_code = 422
    code = "media"


class HostNotAllowed(MediaError):
    """A URL points outside Label Studio and the configured allow-list (SSRF guard)."""

    status_code = 403
    code = "host_not_allowed"


class Overloaded(BackendError):
    """The batching queue is full; the client should retry after a short pause."""

    status_code = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


def error_body(code: str, message: str, request_id: str | None = None) -> dict:
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
        parts = []
        for e in errors[:10]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{loc or 'body'}: {e.get('msg')}")
        return JSONResponse(error_body("invalid_request", "; ".join(parts)), status_code=422)

    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
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
