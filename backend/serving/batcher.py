"""Coalesce concurrent requests into model batches behind one bounded queue.

One model on one accelerator is fastest when it sees full batches and never two at
once. Each request enqueues its images with a future; a single consumer task drains
the queue for up to `max_wait_ms` (or until `max_batch_size` images are waiting),
runs the batch on one worker thread so the event loop keeps answering `/health`, and
hands every request its own slice back. A full queue raises `Overloaded` before
anything is enqueued, which the routes turn into 503 + Retry-After.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import Overloaded

__all__ = ["AsyncBatcher", "BatcherStats", "PredictFn"]

_log = logging.getLogger("backend.serving.batcher")

# (images, with_embedding) -> one prediction per image, in order; never raises per image.
PredictFn = Callable[[Sequence[Any], bool], list]


@dataclass
class BatcherStats:
    requests: int = 0
    images: int = 0
    batches: int = 0
    rejected: int = 0
    busy_seconds: float = 0.0
    largest_batch: int = 0

    @property
    def mean_batch_size(self) -> float:
        return self.images / self.batches if self.batches else 0.0


@dataclass
class _Job:
    images: Sequence[Any]
    with_embedding: bool
    future: asyncio.Future = field(repr=False)


class AsyncBatcher:
    """Bounded, coalescing front of a thread-safe batch predict function.

    Args:
        predict: called on the worker thread with the concatenated images of a batch.
        max_batch_size: stop collecting once this many images are waiting.
        max_wait_ms: how long the first request of a batch waits for company.
        max_queue: images allowed to wait at once; beyond it `submit` raises `Overloaded`.
            A single request larger than this is still accepted when the queue is empty,
            so a big Label Studio batch is slow rather than impossible.
        coalesce: False runs every request on its own (the baseline for benchmarks).
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        coalesce: bool = True,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.coalesce = coalesce
        self.stats = BatcherStats()
        self._pending = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._consumer: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def pending_images(self) -> int:
        """Images accepted but not yet answered (queued or in the running batch)."""
        return self._pending

    @property
    def running(self) -> bool:
        return self._consumer is not None and not self._consumer.done()

    async def start(self) -> None:
        if self.running:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ram-batch")
        self._consumer = asyncio.create_task(self._consume(), name="ram-batcher")

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            try:
                await self._consumer
            except asyncio.CancelledError:
                pass
            self._consumer = None
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(Overloaded("the server is shutting down", retry_after_s=5))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> AsyncBatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def submit(self, images: Sequence[Any], *, with_embedding: bool = False, admitted: bool = False) -> list:
        """Predict `images` as part of whatever batch forms next; one result per image.

        `admitted=True` is for the later chunks of a request whose first chunk was
        accepted: a request streamed in chunks must not be refused halfway through.
        """
        if not images:
            return []
        if self._queue is None or not self.running:
            raise RuntimeError("AsyncBatcher.submit called before start()")
        if not admitted and self._pending and self._pending + len(images) > self.max_queue:
            self.stats.rejected += 1
            retry = max(1, round(self._pending / max(self.max_batch_size, 1) * 0.5))
            raise Overloaded(
                f"server busy: {self._pending} images waiting (limit {self.max_queue}); retry shortly",
                retry_after_s=retry,
            )
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending += len(images)
        self.stats.requests += 1
        await self._queue.put(_Job(list(images), with_embedding, future))
        return await future

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        jobs = [await self._queue.get()]
        if not self.coalesce:
            return jobs
        count = len(jobs[0].images)
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            jobs.append(job)
            count += len(job.images)
        return jobs

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            images = [img for job in jobs for img in job.images]
            with_embedding = any(job.with_embedding for job in jobs)
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._predict, images, with_embedding)
                if len(results) != len(images):
                    raise RuntimeError(f"predict returned {len(results)} results for {len(images)} images")
            except asyncio.CancelledError:
                # stop() during a batch: its requests must hear about it, not wait forever.
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(Overloaded("the server is shutting down", retry_after_s=5))
                raise
            except Exception as exc:  # the engine never raises per image; this is a real fault
                _log.exception("batch of %d images failed", len(images))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
            else:
                offset = 0
                for job in jobs:
                    part = results[offset : offset + len(job.images)]
                    offset += len(job.images)
                    if with_embedding and not job.with_embedding:
                        part = [_without_embedding(p) for p in part]
                    if not job.future.done():  # the client may have gone away
                        job.future.set_result(part)
            finally:
                self._pending -= len(images)
                self.stats.batches += 1
                self.stats.images += len(images)
                self.stats.largest_batch = max(self.stats.largest_batch, len(images))
                self.stats.busy_seconds += time.perf_counter() - started


def _without_embedding(prediction: Any) -> Any:
    if dataclasses.is_dataclass(prediction) and getattr(prediction, "embedding", None) is not None:
        return dataclasses.replace(prediction, embedding=None)
    return prediction
