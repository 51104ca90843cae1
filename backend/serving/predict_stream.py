"""Fetch and predict a request's images in batch-sized chunks.

A `/predict` request can name hundreds of images. Downloading all of them before
predicting would hold every image's bytes at once, so memory would grow with the
request. Here the images go through in chunks of the batcher's batch size: while the
model works on one chunk, the next one downloads (a few at a time), and a chunk's bytes
are dropped as soon as its probabilities are back. Peak memory is about two chunks of
image bytes plus the engine's decoded batch, whatever the request size; only the small
(K,) probability vectors are kept for the whole request. Tasks that name the same image
(the same URL, fetched with the same key) share one download and one prediction.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from .batcher import AsyncBatcher
from ..errors import BackendError
from .media import LabelStudioAccess, MediaFetcher

__all__ = ["ImageJob", "predict_images"]

_DOWNLOAD_CONCURRENCY = 8


@dataclass(frozen=True)
class ImageJob:
    """One image to predict: `slot` is the caller's key for its outcome."""

    slot: Hashable
    ref: str
    task_id: int | None


async def _fetch_chunk(
    fetcher: MediaFetcher, jobs: Sequence[ImageJob], ls: LabelStudioAccess
) -> list[bytes | BackendError]:
    gate = asyncio.Semaphore(_DOWNLOAD_CONCURRENCY)

    async def one(job: ImageJob) -> bytes | BackendError:
        async with gate:
            try:
                return await fetcher.fetch(job.ref, task_id=job.task_id, ls=ls)
            except BackendError as exc:
                return exc

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def predict_images(
    fetcher: MediaFetcher, batcher: AsyncBatcher, jobs: Sequence[ImageJob], ls: LabelStudioAccess, *,
    chunk_size: int, on_image: Callable[[Hashable, bytes], None] | None = None,
) -> dict[Hashable, np.ndarray | str]:
    """RAM probabilities (K,) for every job's image, or the message of why there are none.

    `fetcher` gets the images with the project's Label Studio access `ls`, `batcher` is the
    model that scores them (the project's view); `on_image(slot, bytes)` runs on a worker
    thread for every fetched image (the image cache), chunk by chunk.

    The first chunk that reaches the batcher goes through its queue limit (a busy
    server answers 503 before any work is done); later chunks of the same request are
    already admitted, so a long request is never refused halfway.
    """
    outcomes: dict[Hashable, np.ndarray | str] = {}
    unique, twins = _distinct(fetcher, jobs, ls)
    chunks = [unique[i : i + chunk_size] for i in range(0, len(unique), max(1, chunk_size))]
    if not chunks:
        return outcomes
    admitted = False
    pending: asyncio.Future | None = asyncio.ensure_future(_fetch_chunk(fetcher, chunks[0], ls))
    try:
        for index, chunk in enumerate(chunks):
            assert pending is not None
            fetched = await pending
            pending = (
                asyncio.ensure_future(_fetch_chunk(fetcher, chunks[index + 1], ls)) if index + 1 < len(chunks) else None
            )
            ready: list[tuple[Hashable, bytes]] = []
            for job, result in zip(chunk, fetched):
                if isinstance(result, BackendError):
                    outcomes[job.slot] = result.message
                else:
                    ready.append((job.slot, result))
            del fetched
            if not ready:
                continue
            if on_image is not None:
                await asyncio.to_thread(lambda: [on_image(twin, data) for slot, data in ready
                                                 for twin in (slot, *twins.get(slot, ()))])
            predictions = await batcher.submit([data for _, data in ready], admitted=admitted)
            admitted = True
            for (slot, _), prediction in zip(ready, predictions):
                if prediction.error is not None:
                    outcomes[slot] = f"cannot read the image: {prediction.error}"
                else:
                    outcomes[slot] = prediction.probs
            del ready, predictions
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
    for slot, copies in twins.items():
        for twin in copies:
            outcomes[twin] = outcomes[slot]
    return outcomes


def _distinct(fetcher: MediaFetcher, jobs: Sequence[ImageJob], ls: LabelStudioAccess
              ) -> tuple[list[ImageJob], dict[Hashable, list[Hashable]]]:
    """Jobs that fetch the same thing (the same URL with the same key) are fetched and
    predicted once: a bulk request whose tasks share images costs one download per image.
    Returns the first job of each such group, and {its slot: the other jobs' slots}."""
    first: dict[object, ImageJob] = {}
    twins: dict[Hashable, list[Hashable]] = {}
    unique: list[ImageJob] = []
    for job in jobs:
        try:
            key: object = fetcher.plan(job.ref, task_id=job.task_id, ls=ls)
        except BackendError:
            key = ("refused", job.slot)  # fetching it raises the same error, for this job alone
        leader = first.get(key)
        if leader is None:
            first[key] = job
            unique.append(job)
        else:
            twins.setdefault(leader.slot, []).append(job.slot)
    return unique, twins
