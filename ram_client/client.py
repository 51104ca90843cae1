"""Python client of the native API (`ram-annotate serve`), for the FiftyOne plugin and scripts.

`RamClient.tag` returns `RemotePrediction`s with the fields of `ram_model.ImagePrediction`
(`source`, `probs`, `embedding`, `error`, `ok`) plus the tags the server fired, so code
written against a local `TaggingEngine.predict` works unchanged against a server.
`RamClient.vocabulary()` hands back the server's tag names and class thresholds, so a
caller needs no local copy of the tag files. Needs only httpx and numpy: no torch, no
FastAPI, no ram_model.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

__all__ = ["RamClient", "RamServerError", "RemotePrediction", "RemoteTag", "RemoteVocabulary", "SearchHit"]

ImageInput = bytes | str | os.PathLike


class RamServerError(RuntimeError):
    """The server answered with an error (its JSON `error.message` is the text)."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code


@dataclass(frozen=True)
class RemoteTag:
    """A tag the server fired (same fields as `ram_model.Tag`)."""

    index: int
    name: str
    name_zh: str
    score: float


@dataclass
class RemotePrediction:
    """One image's answer; `probs` only when asked for `all_scores`, `embedding` only when asked."""

    source: str
    probs: np.ndarray | None = None
    embedding: np.ndarray | None = None
    error: str | None = None
    tags: list[RemoteTag] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SearchHit:
    """One `/v1/search` result: the stored image (`key`: its path or `sha256:` upload digest;
    `source`: the name it was tagged under) and its cosine similarity to the text."""

    rank: int
    key: str
    source: str
    score: float


@dataclass(frozen=True)
class RemoteVocabulary:
    """The server's vocabulary: English and Chinese names and the class thresholds, in class order.

    `digest` is the server's own hash of names and thresholds (the suffix of its
    model_version); `thresholds` are the class-file values before any override the server
    applies to its own answers (those are in `info()["thresholds"]`).
    """

    names: tuple[str, ...]
    names_zh: tuple[str, ...]
    thresholds: np.ndarray
    digest: str

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> RemoteVocabulary:
        """Read the `vocabulary` part of a `/v1/info` answer (an older server sends none)."""
        vocab = info.get("vocabulary")
        if not vocab:
            raise RamServerError(200, "no_vocabulary",
                                 "the server does not send its vocabulary in /v1/info; upgrade ram-annotate there")
        return cls(tuple(vocab["names"]), tuple(vocab["names_zh"]),
                   np.asarray(vocab["thresholds"], dtype=np.float32), vocab["digest"])


class RamClient:
    """Talks to `ram-annotate serve`.

    Args:
        url: server base URL, e.g. ``http://127.0.0.1:9090``.
        auth: ``(user, password)`` when the server has basic auth on.
        timeout: seconds per HTTP request (a request holds up to `chunk_size` images).
        chunk_size: images per request; larger inputs are sent in several requests.
        retries: how often a 503 (queue full) is retried, honouring Retry-After.
        server_paths: send path inputs as paths the server reads under its allowed roots
            instead of uploading the bytes (only when client and server share a disk).
    """

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeout: float = 120.0,
        chunk_size: int = 32,
        retries: int = 5,
        server_paths: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.url = url.rstrip("/")
        self.chunk_size = chunk_size
        self.retries = retries
        self.server_paths = server_paths
        self._http = httpx.Client(base_url=self.url, auth=auth, timeout=timeout, transport=transport, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """Variant, vocabulary size, thresholds, model_version, device and queue depth."""
        return self._check(self._send(lambda: self._http.get("/v1/info")))

    def vocabulary(self) -> RemoteVocabulary:
        """The tag names and class thresholds the server tags with (from `/v1/info`)."""
        return RemoteVocabulary.from_info(self.info())

    def health(self) -> dict[str, Any]:
        return self._check(self._send(lambda: self._http.get("/health")))

    def tag(
        self,
        images: Sequence[ImageInput],
        *,
        all_scores: bool = False,
        embedding: bool = False,
        threshold: float | None = None,
        top_k: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        index: str | None = None,
    ) -> list[RemotePrediction]:
        """One `RemotePrediction` per input, in order; `probs` is the full (K,) float32
        array when `all_scores`, `embedding` the (512,) array when asked. A bad image
        gets `error`, as with the local engine; a bad request raises `RamServerError`.
        With `index`, the server also keeps each image's embedding there for `search`."""
        images = list(images)
        out: list[RemotePrediction] = []
        for start in range(0, len(images), self.chunk_size):
            chunk = images[start : start + self.chunk_size]
            out.extend(self._tag_chunk(chunk, all_scores, embedding, threshold, top_k, index))
            if progress is not None:
                progress(len(out), len(images))
        return out

    def _tag_chunk(
        self, chunk: Sequence[ImageInput], all_scores: bool, embedding: bool, threshold: float | None,
        top_k: int | None, index: str | None = None,
    ) -> list[RemotePrediction]:
        data: dict[str, Any] = {"all_scores": str(all_scores).lower(), "embedding": str(embedding).lower()}
        if index is not None:
            data["index"] = index
        if threshold is not None:
            data["threshold"] = str(threshold)
        if top_k is not None:
            data["top_k"] = str(top_k)
        return [RemotePrediction(source=os.fspath(item), error=answer) if isinstance(answer, str)
                else _to_prediction(answer, item) for item, answer in zip(chunk, self._post_chunk("/v1/tag", chunk, data))]

    def search(self, text: str, *, index: str | None = None, top_k: int = 10) -> list[SearchHit]:
        """`/v1/search`: the images stored in `index` (the server's `default` when None) ranked by
        cosine similarity to `text`, best first. Needs a server with a text encoder and images
        tagged with `tag(..., index=...)`; anything else raises `RamServerError` with the reason."""
        body: dict[str, Any] = {"text": text, "top_k": top_k}
        if index is not None:
            body["index"] = index
        answer = self._check(self._send(lambda: self._http.post("/v1/search", json=body)))
        return [SearchHit(int(h["rank"]), h["key"], h["source"], float(h["score"])) for h in answer["results"]]

    def detect(
        self,
        images: Sequence[ImageInput],
        *,
        masks: bool = False,
        threshold: float | None = None,
        top_k: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[dict[str, Any]]:
        """`/v1/detect`: per input, `{"source", "ok", "error"?, "tags", "width", "height", "detections":
        [{"label", "score", "box": [x0, y0, x1, y1] normalised, "mask"?: COCO RLE}]}` (a local read
        error is `ok: false` too). Needs a server started with `--detector` (`--segmenter` for masks)."""
        images = list(images)
        data: dict[str, Any] = {"masks": str(masks).lower()}
        if threshold is not None:
            data["threshold"] = str(threshold)
        if top_k is not None:
            data["top_k"] = str(top_k)
        out: list[dict[str, Any]] = []
        for start in range(0, len(images), self.chunk_size):
            chunk = images[start : start + self.chunk_size]
            for item, answer in zip(chunk, self._post_chunk("/v1/detect", chunk, data)):
                out.append({"source": os.fspath(item), "ok": False, "error": answer, "detections": []}
                           if isinstance(answer, str) else answer)
            if progress is not None:
                progress(len(out), len(images))
        return out

    def _post_chunk(self, route: str, chunk: Sequence[ImageInput], data: dict[str, Any]) -> list[dict[str, Any] | str]:
        """Send one chunk (bytes and local files uploaded, or paths when `server_paths`); per input,
        the server's result or the error of reading it here, in input order."""
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        paths: list[str] = []
        order: list[tuple[str, int]] = []  # the server answers uploads first, then paths
        answered: dict[int, dict[str, Any] | str] = {}
        for i, item in enumerate(chunk):
            if isinstance(item, (bytes, bytearray)):
                files.append(("images", (f"image-{i}", bytes(item), "application/octet-stream")))
                order.append(("file", i))
            elif self.server_paths:
                paths.append(os.fspath(item))
                order.append(("path", i))
            else:
                path = Path(os.fspath(item))
                try:
                    files.append(("images", (str(path), path.read_bytes(), "application/octet-stream")))
                    order.append(("file", i))
                except OSError as exc:
                    answered[i] = f"cannot read {path}: {exc}"
        data = dict(data, paths=paths) if paths else data
        results: list[dict[str, Any]] = []
        if files or paths:
            body = self._check(self._send(lambda: self._http.post(route, data=data, files=files or None)))
            results = body["results"]
        uploads = iter(results[: len(files)])
        by_path = iter(results[len(files) :])
        for kind, i in order:
            answered[i] = next(uploads) if kind == "file" else next(by_path)
        return [answered[i] for i in range(len(chunk))]

    def _send(self, request: Callable[[], httpx.Response]) -> httpx.Response:
        for attempt in range(self.retries + 1):
            response = request()
            if response.status_code != 503 or attempt == self.retries:
                return response
            time.sleep(min(float(response.headers.get("retry-after", "1") or 1), 30.0))
        return response

    @staticmethod
    def _check(response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 200:
            return response.json()
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        raise RamServerError(response.status_code, error.get("code", "http_error"), error.get("message", response.text))


def _to_prediction(result: dict[str, Any], item: ImageInput) -> RemotePrediction:
    source = item if isinstance(item, (str, os.PathLike)) else result.get("source", "bytes")
    if not result.get("ok"):
        return RemotePrediction(source=os.fspath(source), error=result.get("error") or "unknown error")
    probs = result.get("probs")
    emb = result.get("embedding")
    return RemotePrediction(
        source=os.fspath(source),
        probs=None if probs is None else np.asarray(probs, dtype=np.float32),
        embedding=None if emb is None else np.asarray(emb, dtype=np.float32),
        tags=[RemoteTag(t["index"], t["name"], t["name_zh"], float(t["score"])) for t in result.get("tags", [])],
    )
