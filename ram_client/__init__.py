"""ram_client: a small Python client of ram-annotate's native API (`/v1/tag`, `/v1/info`).

Depends only on httpx and numpy, so scripts and the FiftyOne plugin can talk to a shared
`ram-annotate serve` without installing the server (or torch).
"""
from ram_client.client import RamClient, RamServerError, RemotePrediction, RemoteTag, RemoteVocabulary, SearchHit

__all__ = ["RamClient", "RamServerError", "RemotePrediction", "RemoteTag", "RemoteVocabulary", "SearchHit"]
