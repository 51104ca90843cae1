"""The shared ram-annotate server as a `Tagger` (used when RAM_ANNOTATE_URL is set).

The server returns every class probability (`all_scores`), and the plugin applies its
thresholds itself, exactly as with the in-process engine, so both paths write the same
tags. The native API does not send the tag names, so the vocabulary is read from the same
files the server was started with (default: the packaged official lists); the vocabulary
digest at the end of the server's model_version proves they match.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from backend.client import RamClient
from plugin.errors import PluginInputError
from ram_model import ImagePrediction, TagVocabulary

__all__ = ["RemoteTagger", "parse_auth"]


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """RAM_ANNOTATE_AUTH is "user:password" (the server's BASIC_AUTH_USER / BASIC_AUTH_PASS)."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user:
        raise PluginInputError("RAM_ANNOTATE_AUTH must be 'user:password'")
    return user, password


class RemoteTagger:
    def __init__(self, url: str, *, auth: str | None = None, tag_list: str | None = None,
                 tag_list_zh: str | None = None, thresholds: str | None = None) -> None:
        self._client = RamClient(url, auth=parse_auth(auth))
        self._url = url
        try:
            info = self._client.info()
        except httpx.TransportError as e:
            raise PluginInputError(f"Cannot reach the ram-annotate server at {url} (RAM_ANNOTATE_URL): {e}") from e
        self._info = info
        vocab = TagVocabulary.from_files(tag_list, tag_list_zh, thresholds)
        if len(vocab) != info["vocabulary_size"] or not info["model_version"].endswith(f"-{vocab.digest}"):
            raise PluginInputError(
                f"The server at {url} uses another vocabulary ({info['vocabulary_size']} tags, model_version "
                f"{info['model_version']}) than the local tag list ({len(vocab)} tags, digest {vocab.digest}); "
                "set tag_list / tag_list_zh / thresholds to the files the server was started with"
            )
        self._vocab = vocab

    @property
    def vocab(self) -> TagVocabulary:
        return self._vocab

    @property
    def model_version(self) -> str:
        return self._info["model_version"]

    def describe(self) -> dict[str, Any]:
        return {"where": self._url, "checkpoint": None, "variant": self._info["variant"],
                "random_weights": self.model_version.startswith("random-")}

    def predict(self, images: Sequence[Any], *, with_embedding: bool = False,
                progress: Callable[[int, int], None] | None = None) -> list[ImagePrediction]:
        return list(self._client.tag(images, all_scores=True, embedding=with_embedding, progress=progress))
