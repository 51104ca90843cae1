"""Free-text search over image embeddings: a text's CLIP embedding against RAM++'s pooled image
embeddings (`ram-annotate tag --embedding` writes them), best cosine similarity first.

RAM++'s pooled image token is trained towards CLIP's image embedding, the space CLIP's
text encoder writes into, so a sentence ranks images without any tag in between. With
random weights (either side) the order means nothing; the caller says so.
"""
from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import ConfigError

__all__ = ["EmbeddingIndex", "rank_by_text", "rank_chunks_by_text", "rank_vectors", "read_embedding_index",
           "unit_rows"]

T = TypeVar("T")


@dataclass
class EmbeddingIndex:
    paths: list[str]
    vectors: np.ndarray  # [N, 512] float32, unit rows
    model_versions: set[str]
    random_weights: bool
    skipped: int  # rows without an embedding (errors, or tagged without --embedding)


def read_embedding_index(path: str | Path) -> EmbeddingIndex:
    """The rows of a `tag --embedding` JSON Lines file that carry an embedding."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"index {path} is not a file (write one with `ram-annotate tag ... --embedding -o {path}`)")
    paths, vectors, versions, skipped, random = [], [], set(), 0, False
    with open(source, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{lineno} is not JSON ({e.msg})") from None
            vector = row.get("embedding") if isinstance(row, dict) else None
            if not vector:
                skipped += 1
                continue
            paths.append(str(row.get("path")))
            vectors.append(np.asarray(vector, dtype=np.float32))
            versions.add(str(row.get("model_version")))
            random = random or bool(row.get("random_weights"))
    if not vectors:
        raise ConfigError(f"no row of {path} has an embedding; tag the images with --embedding")
    widths = {v.shape for v in vectors}
    if len(widths) != 1:
        raise ConfigError(f"{path} mixes embeddings of different widths: {sorted(w[0] for w in widths)}")
    return EmbeddingIndex(paths, unit_rows(np.stack(vectors)), versions, random, skipped)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """[N, D] float32 rows scaled to unit length (a zero row stays zero), so a dot product is the cosine."""
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def rank_by_text(index: EmbeddingIndex, query: np.ndarray, top_k: int) -> list[tuple[int, float]]:
    """(row, cosine similarity) of the `top_k` rows closest to one [512] text embedding."""
    return rank_vectors(index.vectors, query, top_k)


def rank_vectors(vectors: np.ndarray, query: np.ndarray, top_k: int) -> list[tuple[int, float]]:
    """(row, cosine similarity) of the `top_k` unit rows of `vectors` closest to `query`; ties keep row order."""
    if query.shape != vectors.shape[1:]:
        raise ConfigError(f"the text embedding has {query.shape[0]} dimensions, the index {vectors.shape[1]}")
    scores = vectors @ (query / max(float(np.linalg.norm(query)), 1e-12))
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [(int(i), float(scores[i])) for i in order]


def rank_chunks_by_text(chunks: Iterable[tuple[Sequence[T], np.ndarray]], query: np.ndarray, top_k: int
                        ) -> list[tuple[T, float]]:
    """(item, cosine similarity) of the `top_k` rows closest to `query` over (items, [n, D] rows) chunks
    (rows of any length: each is scaled to unit length here).

    For an index too large to hold at once (the server's stored embeddings): each chunk is
    ranked by `rank_vectors` and only a `top_k` heap is kept, so memory is one chunk plus
    `top_k` items. The order equals `rank_vectors` over all rows stacked (ties: first row first).
    """
    heap: list[tuple[float, int, int, T]] = []  # (score, -position, tiebreak, item): the worst on top
    seen = 0
    for items, vectors in chunks:
        for row, score in rank_vectors(unit_rows(vectors), query, top_k):
            entry = (score, -(seen + row), seen + row, items[row])
            if len(heap) < top_k:
                heapq.heappush(heap, entry)
            elif entry[:2] > heap[0][:2]:
                heapq.heapreplace(heap, entry)
        seen += len(items)
    return [(item, score) for score, _, _, item in sorted(heap, key=lambda e: (-e[0], e[2]))]
