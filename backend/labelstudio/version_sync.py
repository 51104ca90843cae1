"""Point the Label Studio project at the model_version we serve, keeping the connection title the user gave.

Label Studio 1.23 fills the data manager's "Prediction score" column (and orders
uncertainty sampling, and turns predictions into annotations) only from predictions
whose `model_version` equals the *project's* model version. When a backend is connected,
the project's model version is set to the connection's title ("live model"), never to
what the backend's `/setup` answers (`ml/api.py: perform_create`; the
`ff_front_dev_1682_model_version_dropdown` flag that would read `/setup`'s answer is
off). So with any title but our exact `model_version`, every prediction of ours is
filtered out of the column.

After predictions of a version are handed over, this:
1. keeps the connection's title the user gave and appends the version to it,
   `<user title> · ft1-ram_plus-...`, replacing only a suffix of this form (one of
   our versions after ` · `) that an earlier version left (`PATCH /api/ml/{id}`), so
   the Model settings page shows what serves;
2. then sets the project's model version to that version (`PATCH /api/projects/{id}`).
   Label Studio accepts it only once it has stored predictions of that version (its
   serializer checks), and stores ours after our answer, so this is retried briefly.

A project pointed at anything but this connection, an earlier version of ours or
nothing is left alone. The cost, documented in backend/README.md: a project on a stored
version shows those predictions when a task opens, rather than asking the server live
(Retrieve predictions asks it); `--no-sync-label-studio-version` turns all this off.

The calls go through the one Label Studio client (`ram_client.labelstudio.client`,
label-studio-sdk underneath), in a worker thread since that client is synchronous.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from ram_client.labelstudio.client import LabelStudioClient, LabelStudioError

from ..serving.media import LabelStudioAccess, redact_url

__all__ = ["SEPARATOR", "VersionSync", "titled_with_version", "user_title"]

_log = logging.getLogger("backend.labelstudio.version_sync")

SEPARATOR = " · "
# One of our versions: [ft<N>-][random-]<variant>-<10 hex>-<digest>[-bf16][:<thresholds digest>].
_OUR_VERSION = re.compile(r"(ft\d+-)?(random-)?[a-z][a-z_]*-[0-9a-f]{10}-[0-9a-f]+\S*")
_PROJECT_RETRIES = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds before each retry: Label Studio stores our predictions


def user_title(title: str) -> str:
    """The title the user gave: a suffix we added (` · <one of our versions>`) removed; a title that is
    only a version of ours (what releases before this one renamed it to) gives "ram-annotate"."""
    head, sep, tail = title.rpartition(SEPARATOR)
    if sep and _OUR_VERSION.fullmatch(tail):
        return head
    return "ram-annotate" if _OUR_VERSION.fullmatch(title) else title


def titled_with_version(title: str, version: str) -> str:
    return f"{user_title(title)}{SEPARATOR}{version}"


def _is_ours(backend: dict[str, Any], version: str) -> bool:
    title = str(backend.get("title") or "")
    return backend.get("model_version") == version or title == version or title.endswith(SEPARATOR + version)


class VersionSync:
    """Keeps each Label Studio project's model connection titled with, and the project pointed at, the
    version this server serves; one attempt per (Label Studio, project, version), never per request."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._synced: dict[tuple[str, str], str] = {}  # (Label Studio URL, project id) -> version last synced

    async def sync(self, ls: LabelStudioAccess, project_id: str | None, version: str) -> None:
        if not self.enabled or project_id is None or not ls.base_url or not ls.token:
            return
        key = (ls.base_url, project_id)
        previous = self._synced.get(key)
        if previous == version:
            return
        self._synced[key] = version  # a failure is logged, not retried each request
        try:
            # The one Label Studio client (label-studio-sdk underneath) is synchronous: a worker thread,
            # where the retries' sleeps keep no request of the event loop waiting.
            await asyncio.to_thread(_sync, ls.base_url, ls.token, int(project_id), version, previous)
        except (LabelStudioError, ValueError, KeyError) as exc:
            _log.warning("project %s: could not update the model connection at %s: %s", project_id,
                         redact_url(ls.base_url), exc)


def _sync(url: str, token: str, project_id: int, version: str, previous: str | None) -> None:
    with LabelStudioClient(url, token, timeout=30.0) as client:
        backends = [b for b in client.ml_backends(project_id) if isinstance(b, dict)]
        ours = [b for b in backends if _is_ours(b, version)]
        if not ours and len(backends) == 1:
            ours = backends
        if len(ours) != 1:
            _log.info("project %s: cannot tell which of %d model connections is this server; left as is",
                      project_id, len(backends))
            return
        backend = ours[0]
        old_title = str(backend.get("title") or "")
        title = titled_with_version(old_title, version)
        if old_title != title:  # first: Label Studio moves a project that follows the title along with it
            client.update_ml_backend(backend["id"], title=title, url=backend["url"], project=project_id)
            _log.info("project %s: Label Studio model connection %s titled %r (was %r)", project_id,
                      backend["id"], title, old_title)
        _point_project(client, project_id, version, {old_title, title, user_title(old_title), previous})


def _point_project(client: LabelStudioClient, project_id: int, version: str, followed: set[Any]) -> None:
    """Set the project's model version to `version` if it follows this connection, an earlier version
    of ours or nothing; Label Studio refuses (400) until it has stored predictions of the version."""
    current = client.project(project_id).get("model_version")
    if current == version:
        return
    if current not in followed and current not in ("", None) and not _OUR_VERSION.fullmatch(str(current)):
        _log.info("project %s: its model version %r is not this server's; left as is", project_id, current)
        return
    refusal = None
    for delay in (0.0, *_PROJECT_RETRIES):
        time.sleep(delay)
        try:
            client.update_project(project_id, model_version=version)
        except LabelStudioError as e:
            if e.status != 400:
                raise
            refusal = e
            continue
        _log.info("project %s: Label Studio's model version %r -> %r (its Prediction score column reads "
                  "predictions of this version)", project_id, current, version)
        return
    _log.warning("project %s: Label Studio did not accept model version %r (no stored predictions of it yet?): "
                 "%s", project_id, version, str(refusal)[:300])
