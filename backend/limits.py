"""A cap on request bodies, enforced while they arrive.

FastAPI reads a whole body into memory before validating it, so without a cap one
request can hold as much memory as a client cares to send. This is a plain ASGI
middleware (not `BaseHTTPMiddleware`, which buffers) that refuses a declared
`Content-Length` over the limit before reading anything, and counts the bytes of
bodies without one (chunked uploads), answering 413 as soon as they pass it.

Image uploads (`multipart/form-data` to the paths in `upload_paths`) get their own,
larger limit; every other body (JSON from Label Studio and scripts) the small one.
"""
from __future__ import annotations

import json
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PayloadTooLarge, error_body

__all__ = ["BodySizeLimit", "install_body_limit"]


class _BodyTooLarge(Exception):
    """Raised inside `receive` once the body passes the limit; never reaches a client."""


class BodySizeLimit:
    """ASGI middleware: 413 for bodies over `max_body_bytes` (or `max_upload_bytes` for
    multipart bodies sent to `upload_paths`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_paths: Collection[str] = ("/v1/tag",),
        max_predict_body_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_paths = frozenset(upload_paths)
        # Label Studio's "Retrieve predictions" posts every selected task in one /predict.
        self.max_predict_body_bytes = max_predict_body_bytes or max_body_bytes

    def _limit(self, scope: Scope, headers: Headers) -> tuple[int, str]:
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        if multipart and scope.get("path") in self.upload_paths:
            return self.max_upload_bytes, "an upload is limited to {n} bytes (--max-upload-mb, RAM_ANNOTATE_MAX_UPLOAD_BYTES)"
        if scope.get("path") == "/predict":
            return self.max_predict_body_bytes, ("a /predict body is limited to {n} bytes (--max-predict-body-mb, "
                                                 "RAM_ANNOTATE_MAX_PREDICT_BODY_BYTES): select fewer tasks at a time")
        return self.max_body_bytes, "a request body is limited to {n} bytes (--max-body-mb, RAM_ANNOTATE_MAX_BODY_BYTES)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit, rule = self._limit(scope, headers)
        message = rule.format(n=limit)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _answer_413(send, f"request body of {int(declared)} bytes refused: {message}")
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return incoming

        async def guarded_send(outgoing: Message) -> None:
            nonlocal started
            if exceeded:
                # The app turned the failed read into its own error (FastAPI says 400
                # "error parsing the body"); the client must hear the real reason.
                if outgoing["type"] == "http.response.start" and not started:
                    started = True
                    await _answer_413(send, f"request body refused: {message}")
                return
            if outgoing["type"] == "http.response.start":
                started = True
            await send(outgoing)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not started:
                await _answer_413(send, f"request body refused: {message}")


async def _answer_413(send: Send, message: str) -> None:
    body = json.dumps(error_body(PayloadTooLarge.code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_body_limit(app, *, max_body_bytes: int, max_upload_bytes: int,
                       max_predict_body_bytes: int | None = None) -> None:
    """Outermost of the app's own middleware, so even unauthenticated bodies are capped."""
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes, max_upload_bytes=max_upload_bytes,
                       max_predict_body_bytes=max_predict_body_bytes)
