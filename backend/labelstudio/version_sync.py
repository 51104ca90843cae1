"""Keep the Label Studio model connection's title equal to the model_version we serve.

Label Studio 1.23 fills the data manager's "Prediction score" column (and orders
uncertainty sampling, and turns predictions into annotations) only from predictions
whose `model_version` equals the *project's* model version. When a backend is connected,
the project's model version is set to the connection's title ("live model"), never to
what the backend's `/setup` answers (`ml/api.py: perform_create`; the
`ff_front_dev_1682_model_version_dropdown` flag that would read `/setup`'s answer is
off). So with any title but our exact `model_version`, every prediction of ours is
filtered out of the column.

After predictions of a version are handed over, this renames the connection to that
version (`PATCH /api/ml/{id}`). Label Studio itself carries a title change over to the
project's model version when the project was following the connection (`MLBackend.save`),
so the project stays on the live model, the column shows our scores, and after a
promotion the next version takes over the same way. A project an operator pointed at
some other predictions is left alone; `--no-sync-label-studio-version` turns this off.
"""
from __future__ import annotations

import logging

import httpx

from ..serving.media import redact_url

__all__ = ["sync_connection_title"]

_log = logging.getLogger("backend.labelstudio.version_sync")


async def sync_connection_title(state, project_id: str | None, version: str) -> None:
    if not state.settings.sync_label_studio_version or project_id is None:
        return
    ls = state.projects.label_studio(project_id)
    if not ls.base_url or not ls.token:
        return
    key = (ls.base_url, project_id)
    if state.version_sync.get(key) == version:
        return
    state.version_sync[key] = version  # one attempt per version; a failure is logged, not retried each request
    try:
        headers = await state.fetcher.auth_headers(ls)
        async with httpx.AsyncClient(base_url=ls.base_url, headers=headers, timeout=30.0, trust_env=False) as client:
            listed = await client.get("/api/ml", params={"project": project_id})
            listed.raise_for_status()
            backends = [b for b in listed.json() if isinstance(b, dict)]
            ours = [b for b in backends if b.get("model_version") == version or b.get("title") == version]
            if not ours and len(backends) == 1:
                ours = backends
            if len(ours) != 1:
                _log.info("project %s: cannot tell which of %d model connections is this server; title left as is",
                          project_id, len(backends))
                return
            backend = ours[0]
            if backend.get("title") != version:
                response = await client.patch(f"/api/ml/{backend['id']}", json={
                    "title": version, "url": backend["url"], "project": int(project_id)})
                response.raise_for_status()
                _log.info("project %s: Label Studio model connection %s renamed %r -> %r (its Prediction score "
                          "column follows the connection's title)", project_id, backend["id"], backend.get("title"),
                          version)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        _log.warning("project %s: could not update the model connection at %s: %s", project_id,
                     redact_url(ls.base_url), exc)
