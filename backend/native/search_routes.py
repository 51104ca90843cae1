"""`POST /v1/search`: free text ranked against the image embeddings the server stored.

`/v1/tag` with `index=NAME` (or `store_embeddings=true`, index `default`) keeps each tagged
image's pooled embedding in the store, keyed by its path or upload digest and the
model_version; a search embeds the text with the server's CLIP text encoder
(`--text-encoder`, loaded on first use) and streams that index's rows of the same
model_version through `ram_model.text.search.rank_chunks_by_text` (one chunk and a top-k
heap in memory). With random weights the order means nothing; the answer says so.
"""
from __future__ import annotations

import hashlib
import re
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ram_model.text.search import rank_chunks_by_text

from ..errors import BackendError, BadRequest
from ..state import AppState, get_state
from ..store import StoredEmbedding

__all__ = ["DEFAULT_INDEX", "index_name", "router", "store_embeddings"]

router = APIRouter(prefix="/v1", tags=["native"])

DEFAULT_INDEX = "default"
MAX_TEXT_CHARS = 1000
MAX_TOP_K = 1000
CHUNK_ROWS = 1024  # rows per store round trip: 2 MiB of 512-d float32
_INDEX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class TextEncoderUnavailable(BackendError, status_code=409, code="no_text_encoder"):
    """The server was started without a text encoder, or it cannot be loaded."""


class EmptyIndex(BackendError, status_code=404, code="empty_index"):
    """The index holds no embeddings of the serving model_version."""


class TextTooLong(BackendError, status_code=422, code="text_too_long"):
    """The text is over the text encoder's token limit."""


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    index: str = DEFAULT_INDEX
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)


class SearchHit(BaseModel):
    rank: int
    key: str
    source: str
    score: float


class SearchResponse(BaseModel):
    index: str
    model_version: str
    text_encoder: str
    random_weights: bool
    searched: int
    results: list[SearchHit]


def index_name(index: str | None, store: bool) -> str | None:
    """The index a /v1/tag request stores into (None: store nothing); a bad name is a 400."""
    if index is None:
        return DEFAULT_INDEX if store else None
    if not _INDEX_NAME.fullmatch(index):
        raise BadRequest(f"index {index!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter "
                         "or digit")
    return index


def image_key(item: bytes | str) -> str:
    """An upload's content digest, or the allowed path the server read."""
    return "sha256:" + hashlib.sha256(item).hexdigest() if isinstance(item, bytes) else item


def store_embeddings(state: AppState, index: str, items: list[tuple[str, bytes | str, np.ndarray]],
                     model_version: str, random_weights: bool) -> None:
    """Keep (source, input, embedding) rows in `index`; called by /v1/tag after tagging."""
    state.store.record_embeddings([
        StoredEmbedding(index, image_key(item), model_version, source,
                        np.ascontiguousarray(vector, dtype="<f4").tobytes(), random_weights)
        for source, item, vector in items
    ])


def _encode(state: AppState, text: str) -> tuple[np.ndarray, str, bool]:
    from ram_model import RamModelError

    try:
        encoder = state.engine.text_encoder()
    except (RamModelError, OSError, ImportError) as exc:
        raise TextEncoderUnavailable(f"the server has no usable text encoder (--text-encoder): {exc}") from None
    tokens = encoder.token_count(text)
    if tokens > encoder.max_tokens:
        raise TextTooLong(f"text is {tokens} tokens; the text encoder reads at most {encoder.max_tokens}")
    return encoder.encode([text]).numpy()[0], encoder.identity, encoder.random_weights


def _rank(state: AppState, request: SearchRequest, query: np.ndarray, model_version: str
          ) -> tuple[list[tuple[StoredEmbedding, float]], int, bool]:
    counted = {"rows": 0, "random": False}

    def chunks():
        for rows in state.store.embedding_chunks(request.index, model_version, chunk_size=CHUNK_ROWS):
            counted["rows"] += len(rows)
            counted["random"] = counted["random"] or any(r.random_weights for r in rows)
            vectors = np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows]).astype(np.float32)
            if vectors.shape[1] != query.shape[0]:
                raise BadRequest(f"index {request.index!r} holds {vectors.shape[1]}-d embeddings; the text "
                                 f"encoder writes {query.shape[0]}-d")
            yield rows, vectors

    hits = rank_chunks_by_text(chunks(), query, request.top_k)
    return hits, counted["rows"], counted["random"]


@router.post("/search", response_model=SearchResponse)
async def search(request: SearchRequest, state: Annotated[AppState, Depends(get_state)]) -> SearchResponse:
    """Images of `index` ranked by cosine similarity to `text`, best first (at most `top_k`)."""
    text = request.text.strip()
    if not text:
        raise BadRequest("text is empty")
    model_version = state.engine.model_version
    query, identity, text_random = await run_in_threadpool(_encode, state, text)
    hits, searched, image_random = await run_in_threadpool(_rank, state, request, query, model_version)
    if not searched:
        raise EmptyIndex(f"index {request.index!r} has no embeddings of model_version {model_version}; "
                         f"tag images with /v1/tag index={request.index} first")
    return SearchResponse(
        index=request.index, model_version=model_version, text_encoder=identity,
        random_weights=bool(text_random or image_random or getattr(state.engine, "random_weights", False)),
        searched=searched,
        results=[SearchHit(rank=i, key=row.key, source=row.source, score=score)
                 for i, (row, score) in enumerate(hits, 1)],
    )
