"""Which of a project's registered versions can serve when the active one cannot load.

A damaged version (a truncated `model.safetensors`, a garbage `card.json`) must not take a
project down, nor be re-read on every request: the first failed load is remembered with
its one-line reason and logged once; the project is then served by the version that was
active before it (the registry's history, newest first) or, when none loads, the base
model. Activating or promoting again forgets the failures (`LoadFailures.forget`), so an
operator who repaired a version gets one new try.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

__all__ = ["LoadFailures", "active_pointer", "fallback_chain"]

_log = logging.getLogger("backend.model_fallback")
_ACTIVE = "ACTIVE"  # the registry's pointer file (ram_model.weights.registry)


def active_pointer(registry_dir: Path) -> str | None:
    """The version the registry's ACTIVE file names, without reading that version's files."""
    try:
        text = (registry_dir / _ACTIVE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a name no file can have (NUL)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        _log.warning("%s/%s cannot be read (%s); serving the base model", registry_dir, _ACTIVE, exc)
        return None
    return text or None


def fallback_chain(registry, name: str, active: str) -> list[str]:
    """`active`, then the versions active before it (newest first), each once."""
    try:
        stack = [str(v) for v in registry.history(name).get("stack", [])]
    except Exception as exc:  # noqa: BLE001 - a damaged history leaves only the active version
        _log.warning("model %s: its history cannot be read (%s); no earlier version to fall back to", name, exc)
        stack = []
    chain = [active]
    for version in reversed(stack):
        if version not in chain:
            chain.append(version)
    return chain


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


class LoadFailures:
    """Versions (per project) whose load failed, with why; thread-safe."""

    def __init__(self) -> None:
        self._failed: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def note(self, project: str, version: str, exc: BaseException) -> str:
        message = _one_line(exc)
        with self._lock:
            self._failed.setdefault(project, {})[version] = message
        _log.warning("project %s: model version %s cannot be loaded and is skipped until it is activated again "
                     "(the previous good version or the base model serves): %s", project, version, message)
        return message

    def failed(self, project: str, version: str) -> bool:
        with self._lock:
            return version in self._failed.get(project, {})

    def of(self, project: str) -> dict[str, str]:
        with self._lock:
            return dict(self._failed.get(project, {}))

    def forget(self, project: str) -> None:
        with self._lock:
            self._failed.pop(project, None)
