"""Throughput and latency of the server against the in-process engine, in one run.

    PYTHONPATH=. python bench/bench_backend.py [--size tiny|mid] [--images 64] [--device cpu]

Builds a random-weight checkpoint (speed does not depend on the weights), then measures
with the same EngineConfig:

1. the in-process engine at batch 1 and batch 32 (the baseline);
2. `ram-annotate serve` (a separate process, over HTTP with the Python client) at
   batch 1 and batch 32 per request;
3. 16 concurrent single-image clients, against a server with coalescing and one
   started with --no-coalesce.

Every ratio is against the in-process figure measured in this same run.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ram_client import RamClient
from ram_model import HeadConfig, SwinConfig, TaggingEngine
from ram_model.weights.testing import TINY_HEAD, TINY_SWIN, make_tiny_checkpoint

SIZES = {
    "tiny": (TINY_SWIN, TINY_HEAD),
    # Swin-T at 224 with a 2-layer head: big enough that the model, not HTTP, dominates.
    "mid": (
        SwinConfig(image_res=224, window_size=7, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                   vision_width=768),
        HeadConfig(hidden_size=256, intermediate_size=1024, num_attention_heads=4, num_hidden_layers=2),
    ),
}


def _png(seed: int) -> bytes:
    import io

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0


class Server:
    def __init__(self, files, device: str, batch_size: int, extra: list[str], workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "ram_model.cli", "serve", "--checkpoint", str(files.checkpoint),
            "--swin-config", str(files.swin_config), "--head-config", str(files.head_config),
            "--tag-list", str(files.tag_list), "--tag-list-zh", str(files.tag_list_zh),
            "--thresholds", str(files.thresholds), "--device", device, "--batch-size", str(batch_size),
            "--port", str(self.port), "--model-dir", str(workdir), "--log-level", "error", *extra,
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(cmd, env=env, cwd=str(workdir), start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                httpx.get(f"{self.url}/health", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)


def timed_batches(predict: Callable[[list[bytes]], object], images: list[bytes], batch: int
                  ) -> tuple[float, list[float]]:
    """Images per second over `images` in `batch`-sized calls of `predict` (after one warm-up call),
    and each call's latency: the same loop times the engine in process and the server over HTTP."""
    predict(images[:batch])  # warm-up
    latencies = []
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        t = time.perf_counter()
        predict(images[i : i + batch])
        latencies.append(time.perf_counter() - t)
    return len(images) / (time.perf_counter() - start), latencies


def bench_engine(engine: TaggingEngine, images: list[bytes], batch: int) -> tuple[float, list[float]]:
    return timed_batches(engine.predict, images, batch)


def bench_server(url: str, images: list[bytes], batch: int) -> tuple[float, list[float]]:
    with RamClient(url, chunk_size=batch) as client:
        return timed_batches(client.tag, images, batch)


def bench_concurrent(url: str, images: list[bytes], clients: int) -> tuple[float, list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = [images[i::clients] for i in range(clients)]

    def worker(mine: list[bytes]) -> None:
        with RamClient(url, chunk_size=1) as client:
            for img in mine:
                t = time.perf_counter()
                client.tag([img])
                with lock:
                    latencies.append(time.perf_counter() - t)

    with RamClient(url) as client:
        client.tag(images[:2])
        before = httpx.get(f"{url}/metrics").text
    threads = [threading.Thread(target=worker, args=(m,)) for m in per_client]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    after = httpx.get(f"{url}/metrics").text

    def metric(text: str, name: str) -> float:
        return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))

    batches = metric(after, "ram_batches_total") - metric(before, "ram_batches_total")
    imgs = metric(after, "ram_batch_images_total") - metric(before, "ram_batch_images_total")
    return len(images) / elapsed, latencies, imgs / max(batches, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    swin, head = SIZES[args.size]
    files = make_tiny_checkpoint(work / "ckpt", swin=swin, head=head)
    images = [_png(i) for i in range(args.images)]
    batch_size = 32
    cfg = files.engine_config(device=args.device, batch_size=batch_size, decode_workers=2)
    engine = TaggingEngine.from_config(cfg)

    rows: list[tuple[str, float, list[float], str]] = []
    base1, lat = bench_engine(engine, images, 1)
    rows.append(("in-process engine, batch 1", base1, lat, ""))
    base32, lat = bench_engine(engine, images, batch_size)
    rows.append(("in-process engine, batch 32", base32, lat, ""))
    del engine

    with Server(files, args.device, batch_size, [], work) as server:
        tp, lat = bench_server(server.url, images, 1)
        rows.append(("server, 1 image/request", tp, lat, f"{tp / base1:.2f}x engine b1"))
        tp, lat = bench_server(server.url, images, batch_size)
        rows.append(("server, 32 images/request", tp, lat, f"{tp / base32:.2f}x engine b32"))
        tp, lat, mean_batch = bench_concurrent(server.url, images, args.clients)
        coalesced = tp
        rows.append((f"server, {args.clients} clients, coalescing", tp, lat,
                     f"{tp / base1:.2f}x engine b1, mean batch {mean_batch:.1f}"))
    with Server(files, args.device, batch_size, ["--no-coalesce"], work) as server:
        tp, lat, mean_batch = bench_concurrent(server.url, images, args.clients)
        rows.append((f"server, {args.clients} clients, no coalescing", tp, lat,
                     f"{tp / base1:.2f}x engine b1, mean batch {mean_batch:.1f}; coalescing {coalesced / tp:.2f}x"))

    print(f"\nsize={args.size} device={args.device} images={args.images} (JPEG 640x480), cpu threads="
          f"{os.cpu_count()}")
    print(f"{'setup':44s} {'img/s':>8s} {'p50 ms':>9s} {'p95 ms':>9s}  ratio")
    for name, tp, lat, note in rows:
        print(f"{name:44s} {tp:8.1f} {_pct(lat, 50):9.1f} {_pct(lat, 95):9.1f}  {note}")
    print(f"(p50/p95 are per call: one image for batch 1 and clients, {batch_size} images for batch 32)")


if __name__ == "__main__":
    main()
