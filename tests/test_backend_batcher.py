"""The coalescing queue: batches form from concurrent requests, every request gets its
own results back, and a full queue says 503 instead of falling over."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from backend_fixtures import image_bytes, make_app, running_server

from backend.serving.batcher import AsyncBatcher
from backend.errors import Overloaded
from ram_model import TaggingEngine

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.



class Recording:
    """The real engine's predict, remembering the size of every batch it was given."""

    def __init__(self, engine: TaggingEngine, gate: threading.Event | None = None) -> None:
        self.engine = engine
        self.sizes: list[int] = []
        self.gate = gate

    def __call__(self, images, with_embedding):
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.sizes.append(len(images))
        return self.engine.predict(images, with_embedding=with_embedding)


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_results(backend_engine: TaggingEngine):
    images = [image_bytes(i) for i in range(8)]
    expected = backend_engine.predict(images)
    predict = Recording(backend_engine)

    async def go():
        async with AsyncBatcher(predict, max_batch_size=8, max_wait_ms=200) as batcher:
            return await asyncio.gather(*(batcher.submit([img]) for img in images)), batcher.stats

    results, stats = run(go())
    assert len(predict.sizes) < len(images) and sum(predict.sizes) == len(images)
    assert stats.requests == 8 and stats.images == 8 and stats.batches == len(predict.sizes)
    for (got,), want in zip(results, expected):
        np.testing.assert_allclose(got.probs, want.probs, rtol=1e-5, atol=1e-6)


def test_without_coalescing_every_request_runs_alone(backend_engine: TaggingEngine):
    predict = Recording(backend_engine)

    async def go():
        async with AsyncBatcher(predict, max_batch_size=8, max_wait_ms=200, coalesce=False) as batcher:
            await asyncio.gather(*(batcher.submit([image_bytes(i)]) for i in range(4)))

    run(go())
    assert predict.sizes == [1, 1, 1, 1]


def test_embedding_only_for_requests_that_ask(backend_engine: TaggingEngine):
    async def go():
        async with AsyncBatcher(Recording(backend_engine), max_batch_size=4, max_wait_ms=200) as batcher:
            return await asyncio.gather(batcher.submit([image_bytes(0)], with_embedding=True),
                                        batcher.submit([image_bytes(1)]))

    (with_emb,), (without,) = run(go())
    assert with_emb.embedding is not None and without.embedding is None


def test_full_queue_raises_overloaded_with_retry_after(backend_engine: TaggingEngine):
    gate = threading.Event()

    async def go():
        async with AsyncBatcher(Recording(backend_engine, gate), max_batch_size=1, max_wait_ms=0,
                                max_queue=2) as batcher:
            first = asyncio.create_task(batcher.submit([image_bytes(0)]))
            second = asyncio.create_task(batcher.submit([image_bytes(1)]))
            await asyncio.sleep(0.05)
            assert batcher.pending_images == 2
            with pytest.raises(Overloaded) as info:
                await batcher.submit([image_bytes(2)])
            gate.set()
            await asyncio.gather(first, second)
            assert batcher.pending_images == 0
            # An oversized request is slow, not impossible, when the queue is empty.
            assert len(await batcher.submit([image_bytes(i) for i in range(5)])) == 5
            return info.value, batcher.stats.rejected

    error, rejected = run(go())
    assert error.status_code == 503 and int(error.headers["Retry-After"]) >= 1 and rejected == 1


def test_a_failing_batch_fails_its_requests_only(backend_engine: TaggingEngine):
    calls = {"n": 0}

    def flaky(images, with_embedding):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA error: device-side assert")
        return backend_engine.predict(images, with_embedding=with_embedding)

    async def go():
        async with AsyncBatcher(flaky, max_batch_size=4, max_wait_ms=0) as batcher:
            with pytest.raises(RuntimeError, match="device-side"):
                await batcher.submit([image_bytes(0)])
            return await batcher.submit([image_bytes(1)])

    (result,) = run(go())
    assert result.ok


def test_stop_releases_waiting_requests(backend_engine: TaggingEngine):
    gate = threading.Event()

    async def go():
        batcher = AsyncBatcher(Recording(backend_engine, gate), max_batch_size=1, max_wait_ms=0)
        await batcher.start()
        running = asyncio.create_task(batcher.submit([image_bytes(0)]))
        waiting = asyncio.create_task(batcher.submit([image_bytes(1)]))
        await asyncio.sleep(0.05)
        gate.set()
        await batcher.stop()
        return await asyncio.gather(running, waiting, return_exceptions=True)

    outcomes = run(go())
    assert any(isinstance(o, Overloaded) for o in outcomes)


def test_server_answers_503_when_the_queue_is_full(tmp_path: Path, backend_engine: TaggingEngine):
    """Through HTTP: a blocked model plus a one-image queue turns the next request into
    503 + Retry-After, while /health still answers."""
    gate = threading.Event()

    class GatedEngine:
        def __init__(self, engine: TaggingEngine) -> None:
            self._engine = engine

        def __getattr__(self, name):
            return getattr(self._engine, name)

        def predict(self, images, *, with_embedding=False):
            gate.wait(timeout=30)
            return self._engine.predict(images, with_embedding=with_embedding)

    app = make_app(tmp_path, GatedEngine(backend_engine), max_queue=1, max_wait_ms=0)
    files = [("images", ("a.png", image_bytes(0), "image/png"))]
    with running_server(app) as url:
        held: dict = {}
        first = threading.Thread(target=lambda: held.setdefault("r", httpx.post(f"{url}/v1/tag", files=files,
                                                                              timeout=60)))
        first.start()
        for _ in range(100):
            if httpx.get(f"{url}/v1/info").json()["queue_depth"] == 1:
                break
            threading.Event().wait(0.02)
        busy = httpx.post(f"{url}/v1/tag", files=files, timeout=60)
        health = httpx.get(f"{url}/health", timeout=5)
        gate.set()
        first.join(timeout=60)
    assert busy.status_code == 503 and busy.headers["Retry-After"].isdigit()
    assert busy.json()["error"]["code"] == "overloaded"
    assert health.status_code == 200
    assert held["r"].status_code == 200
