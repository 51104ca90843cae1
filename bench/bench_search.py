"""`/v1/search`'s ranking over stored embeddings: streamed from the store in chunks (what the server
does) vs the whole matrix in memory (`rank_vectors`, the baseline, same run), time and peak memory.

    PYTHONPATH=. .venv/bin/python bench/bench_search.py --rows 100000
"""
from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from backend.store import StoredEmbedding, open_store
from ram_model.text.search import rank_chunks_by_text, rank_vectors, unit_rows


def _streamed(store, query: np.ndarray, top_k: int, chunk: int):
    chunks = (([r.key for r in rows], np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows]))
              for rows in store.embedding_chunks("bench", "v1", chunk_size=chunk))
    return rank_chunks_by_text(chunks, query, top_k)


def _in_memory(store, query: np.ndarray, top_k: int):
    rows = [r for c in store.embedding_chunks("bench", "v1", chunk_size=10**9) for r in c]
    vectors = unit_rows(np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows]))
    return [(rows[i].key, s) for i, s in rank_vectors(vectors, query, top_k)]


def _measure(fn):
    tracemalloc.start()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=1024)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "s.sqlite3") as store:
        for start in range(0, args.rows, 5000):
            block = rng.standard_normal((min(5000, args.rows - start), args.dim)).astype(np.float32)
            store.record_embeddings([StoredEmbedding("bench", f"k{start + i}", "v1", f"s{start + i}", v.tobytes())
                                     for i, v in enumerate(block)])
        query = rng.standard_normal(args.dim).astype(np.float32)
        base, base_s, base_peak = _measure(lambda: _in_memory(store, query, args.top_k))
        got, s, peak = _measure(lambda: _streamed(store, query, args.top_k, args.chunk))
    assert [k for k, _ in got] == [k for k, _ in base], "streamed order differs from the in-memory order"
    print(f"{args.rows} rows x {args.dim}, top {args.top_k}, chunks of {args.chunk} (SQLite)")
    print(f"in memory (baseline): {base_s:.2f} s, peak {base_peak / 2**20:.1f} MiB")
    print(f"streamed:             {s:.2f} s, peak {peak / 2**20:.1f} MiB  "
          f"(time x{s / base_s:.2f}, memory x{peak / base_peak:.3f})")


if __name__ == "__main__":
    main()
