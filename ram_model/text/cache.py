"""Description embeddings kept on disk, keyed by a digest of (text encoder, descriptions).

Encoding 63 templates for a few hundred classes takes CLIP a while on a CPU, and a server
restarts or a project is reopened with the same classes: the second time the rows come
from one safetensors file. The key holds the encoder's identity (repo and snapshot) and
every description in order, so a changed text or model is a different file; a file that
cannot be read is recomputed, one that cannot be written is skipped.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from .encoder import TextEncoder

__all__ = ["encode_descriptions", "embedding_cache_folder"]

_FORMAT = b"ram-annotate-text-embeddings-v1"


def embedding_cache_folder(cache_dir: str | None = None) -> Path:
    from ..weights.random_preset import _default_cache_folder

    return (Path(cache_dir) if cache_dir else _default_cache_folder()) / "text-embeddings"


def _digest(identity: str, groups: Sequence[Sequence[str]]) -> str:
    h = hashlib.sha256(_FORMAT + b"\x00" + identity.encode())
    for texts in groups:
        h.update(b"\x02" + str(len(texts)).encode())
        for t in texts:
            h.update(b"\x01" + t.encode())
    return h.hexdigest()[:24]


def _read(path: Path, counts: list[int]) -> list[torch.Tensor] | None:
    from safetensors.torch import load_file

    try:
        data = load_file(str(path))
        rows, stored = data["rows"], data["counts"].tolist()
    except Exception:  # noqa: BLE001 - truncated, foreign or unreadable: recompute
        return None
    if stored != counts or rows.shape[0] != sum(counts):
        return None
    return list(rows.split(counts))


def _write(path: Path, rows: torch.Tensor, counts: list[int]) -> None:
    from safetensors.torch import save_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        save_file({"rows": rows.contiguous(), "counts": torch.tensor(counts, dtype=torch.int64)}, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache folder costs a recomputation next time, nothing more


def encode_descriptions(encoder: TextEncoder, groups: Sequence[Sequence[str]], *,
                        cache_dir: str | None = None) -> list[torch.Tensor]:
    """One [n_i, 512] tensor of unit embeddings per group of descriptions, from disk when cached."""
    counts = [len(g) for g in groups]
    path = embedding_cache_folder(cache_dir) / f"{_digest(encoder.identity, groups)}.safetensors"
    if path.is_file():
        cached = _read(path, counts)
        if cached is not None:
            return cached
    with torch.no_grad():
        rows = encoder.encode([t for g in groups for t in g]).clone()
    _write(path, rows, counts)
    return list(rows.split(counts))
