"""Optional HTTP basic auth, as Label Studio sends it when the ML-backend connection
has "Use basic auth" set (BASIC_AUTH_USER / BASIC_AUTH_PASS).

It is a middleware, not a route dependency, so it also covers what FastAPI serves on
its own (`/docs`, `/redoc`, `/openapi.json`) and any route added later. `/health`
stays open: container health checks (the Dockerfile's HEALTHCHECK, Kubernetes probes)
carry no credentials, and it tells only that the server is up and its model version.
"""
from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from .errors import error_body

__all__ = ["OPEN_PATHS", "basic_auth_problem", "install_basic_auth"]

OPEN_PATHS = frozenset({"/health"})
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="ram-annotate"'}


def basic_auth_problem(header: str, expected: tuple[str, str]) -> str | None:
    """Why `header` does not carry the expected user and password, or None if it does."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return "basic auth required (BASIC_AUTH_USER / BASIC_AUTH_PASS are set on the server)"
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "malformed basic auth header"
    ok_user = secrets.compare_digest(user.encode(), expected[0].encode())
    ok_pass = secrets.compare_digest(password.encode(), expected[1].encode())
    if not (sep and ok_user and ok_pass):
        return "wrong basic auth user or password"
    return None


def install_basic_auth(app: FastAPI, expected: tuple[str, str] | None) -> None:
    """Require `expected` on every path but `OPEN_PATHS`; nothing when auth is off."""
    if expected is None:
        return

    @app.middleware("http")
    async def require_basic_auth(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path in OPEN_PATHS:
            return await call_next(request)
        problem = basic_auth_problem(request.headers.get("authorization", ""), expected)
        if problem is not None:
            return JSONResponse(error_body("unauthorized", problem), status_code=401, headers=_CHALLENGE)
        return await call_next(request)
