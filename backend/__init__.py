"""ram-annotate's HTTP server: one shared RAM model behind Label Studio's ML-backend
protocol (v2) and a small native tagging API.

The engine lives in `ram_model`; this package only translates HTTP to engine calls,
so nothing here decides what a tag means or how a disagreement is scored.
"""
from __future__ import annotations

__all__ = ["RamClient", "Settings", "create_app"]


def __getattr__(name: str):
    # Lazy so that `import backend.client` (what the FiftyOne plugin needs) does not
    # pull FastAPI and the engine into a process that only talks HTTP.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    if name == "RamClient":
        from .client import RamClient

        return RamClient
    raise AttributeError(name)
