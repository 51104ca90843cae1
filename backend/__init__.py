"""ram-annotate's HTTP server: one shared RAM model behind Label Studio's ML-backend
protocol (v2) and a small native tagging API.

The engine lives in `ram_model`; this package only translates HTTP to engine calls,
so nothing here decides what a tag means or how a disagreement is scored.
"""
from __future__ import annotations

__all__ = ["Settings", "create_app"]

# The Python client of the native API lives in the top-level package `ram_client`
# (httpx and numpy only), so a client never imports the server.


def __getattr__(name: str):
    # Lazy: importing a submodule (e.g. backend.settings) must not pull FastAPI's app.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(name)
