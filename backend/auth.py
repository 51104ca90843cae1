"""Optional HTTP basic auth, as Label Studio sends it when the ML-backend connection
has "Use basic auth" set (BASIC_AUTH_USER / BASIC_AUTH_PASS)."""
from __future__ import annotations

import base64
import binascii
import secrets

from fastapi import Request

from .errors import BackendError

__all__ = ["Unauthorized", "require_basic_auth"]


class Unauthorized(BackendError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Basic realm="ram-annotate"'})


def require_basic_auth(request: Request) -> None:
    expected = request.app.state.ram.settings.basic_auth
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthorized("basic auth required (BASIC_AUTH_USER / BASIC_AUTH_PASS are set on the server)")
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed basic auth header") from None
    ok_user = secrets.compare_digest(user.encode(), expected[0].encode())
    ok_pass = secrets.compare_digest(password.encode(), expected[1].encode())
    if not (sep and ok_user and ok_pass):
        raise Unauthorized("wrong basic auth user or password")
