"""The shared ram-annotate server as a `Tagger` (used when RAM_ANNOTATE_URL is set).

The server sends its vocabulary (names, Chinese names, class thresholds) in `/v1/info`, so
the plugin needs no copy of the tag files. It asks for every class probability and applies
the thresholds itself, once, with the same rule as the in-process engine (the tags the
server fires with its own defaults are dropped), so both paths write the same tags.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import httpx

from plugin.errors import PluginInputError
from ram_client import RamClient, RamServerError, RemoteVocabulary
from ram_model import ImagePrediction, TagVocabulary
from ram_model.inference.pipeline import batched
from ram_model.weights.versions import is_random_version

__all__ = ["RemoteTagger", "parse_auth"]


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """RAM_ANNOTATE_AUTH is "user:password" (the server's BASIC_AUTH_USER / BASIC_AUTH_PASS)."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user:
        raise PluginInputError("RAM_ANNOTATE_AUTH must be 'user:password'")
    return user, password


def _vocabulary(url: str, info: dict[str, Any]) -> TagVocabulary:
    """The server's vocabulary, checked against the digest it states (a truncated or altered
    answer must not tag under the wrong names)."""
    try:
        remote: RemoteVocabulary = RemoteVocabulary.from_info(info)
    except RamServerError as e:
        raise PluginInputError(f"The ram-annotate server at {url} is too old for this plugin: {e}") from None
    vocab = TagVocabulary(remote.names, remote.names_zh, remote.thresholds)
    if vocab.digest != remote.digest or not info["model_version"].endswith(f"-{vocab.digest}"):
        raise PluginInputError(
            f"The vocabulary sent by {url} does not match its digest ({remote.digest}, model_version "
            f"{info['model_version']}; received {len(vocab)} tags hashing to {vocab.digest})"
        )
    return vocab


class RemoteTagger:
    def __init__(self, url: str, *, auth: str | None = None) -> None:
        self._client = RamClient(url, auth=parse_auth(auth))
        self._url = url
        try:
            info = self._client.info()
        except httpx.TransportError as e:
            raise PluginInputError(f"Cannot reach the ram-annotate server at {url} (RAM_ANNOTATE_URL): {e}") from e
        except RamServerError as e:
            raise PluginInputError(f"The ram-annotate server at {url} refused /v1/info: {e}") from e
        self._info = info
        self._vocab = _vocabulary(url, info)

    @property
    def vocab(self) -> TagVocabulary:
        return self._vocab

    @property
    def model_version(self) -> str:
        return self._info["model_version"]

    def describe(self) -> dict[str, Any]:
        return {"where": self._url, "checkpoint": None, "variant": self._info["variant"],
                "random_weights": is_random_version(self.model_version)}

    def predict(self, images: Sequence[Any], *, with_embedding: bool = False,
                progress: Callable[[int, int], None] | None = None) -> list[ImagePrediction]:
        answers = self._client.tag(images, all_scores=True, embedding=with_embedding, progress=progress)
        return [ImagePrediction(a.source, a.probs, a.embedding, a.error) for a in answers]

    def predict_iter(self, images: Iterable[Any], *, with_embedding: bool = False) -> Iterator[ImagePrediction]:
        """One request per client chunk (the server batches and prefetches on its side)."""
        for chunk in batched(images, self._client.chunk_size):
            yield from self.predict(chunk, with_embedding=with_embedding)
