"""Decoding images ahead of the model, without ever holding more than a few batches.

Pillow decodes and resizes with the GIL released, so a few threads keep the model fed
while it runs the current batch. The prefetcher reads its sources lazily (a generator
of a million paths is never turned into a list) and keeps `depth` batches decoding
ahead of the one being consumed; it lives as long as one `predict_iter` stream, which
is why long runs stream one iterator instead of calling `predict` per chunk.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

__all__ = ["batched", "default_decode_workers", "prefetch_batches"]

S = TypeVar("S")
R = TypeVar("R")

# One thread per core keeps every core decoding while the model waits; more threads than cores only
# add switching. Measured with bench/bench_pipeline.py (tiny RAM++ at batch 32, 640x480 JPEGs, 2 cores):
# there decoding itself is the limit (~4 ms of CPU per image against ~0.6 ms for the model), whatever
# the worker count; the cap of 8 keeps a many-core host from starving the model's own threads.
_MIN_WORKERS = 2
_MAX_WORKERS = 8


def default_decode_workers() -> int:
    """Decode threads for this machine: one per usable core, at least 2, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(_MIN_WORKERS, min(_MAX_WORKERS, cores))


def batched(items: Iterable[S], size: int) -> Iterator[list[S]]:
    """Consecutive lists of `size` items (the last may be shorter), read lazily."""
    if size < 1:
        raise ValueError("size must be >= 1")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def prefetch_batches(sources: Iterable[S], batch_size: int, prepare: Callable[[S], R],
                     pool: ThreadPoolExecutor | None, depth: int) -> Iterator[tuple[list[S], list[R]]]:
    """Yield (sources, prepared) per batch, in order, with `depth` later batches preparing meanwhile.

    `prepare` must not raise (the engine turns a bad image into a value). Without a pool,
    each batch is prepared inline when it is asked for. Batches the consumer never takes
    (it stopped early) are cancelled where they have not started.
    """
    chunks = batched(sources, batch_size)
    if pool is None:
        for chunk in chunks:
            yield chunk, [prepare(s) for s in chunk]
        return
    ahead: deque[tuple[list[S], list[Future[R]]]] = deque()

    def submit_next() -> None:
        chunk = next(chunks, None)
        if chunk is not None:
            ahead.append((chunk, [pool.submit(prepare, s) for s in chunk]))

    try:
        for _ in range(depth + 1):
            submit_next()
        while ahead:
            chunk, futures = ahead.popleft()
            yield chunk, [f.result() for f in futures]  # the next `depth` batches decode meanwhile
            submit_next()
    finally:
        for _, futures in ahead:
            for f in futures:
                f.cancel()
