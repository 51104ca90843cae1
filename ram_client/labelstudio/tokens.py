"""Which kind of Label Studio API key a string is.

Label Studio has two: a legacy token (40 hex characters, sent as `Authorization: Token ...`)
and a personal access token, a JWT *refresh* token that is traded at `/api/token/refresh/`
for short-lived access tokens (sent as `Bearer ...`). The server's media fetch sends them
itself and must tell them apart; the REST client (on label-studio-sdk, which decides what
to send by its own JWT check) names the kind in its errors and knows when a refresh can
help. One rule for both, here.
"""
from __future__ import annotations

import base64
import json

__all__ = ["is_personal_access_token"]


def is_personal_access_token(token: str) -> bool:
    """A JWT: three dot-separated pieces whose first decodes to a JSON header naming its `alg`.

    Checking the header, not only the dots, keeps a mistyped legacy key from being sent to
    the refresh endpoint (it then fails as a rejected key, which is what it is).
    """
    pieces = token.split(".")
    if len(pieces) != 3:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(pieces[0] + "=" * (-len(pieces[0]) % 4)))
    except (ValueError, json.JSONDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header
