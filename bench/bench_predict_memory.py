"""Peak memory of one big `/predict` request: streamed in chunks vs. all at once.

    PYTHONPATH=. python bench/bench_predict_memory.py [--tasks 300] [--image-mb 2] [--chunk 16]

A local HTTP server (the tests' FileServer) serves one noise PNG of about
`--image-mb` under `--tasks` different paths, and one `/predict` request names them
all. Each mode runs in a fresh process (so RSS is not flattered by memory an earlier
run freed), against the tiny random-weight model (the model's own memory does not
depend on the request):

- `whole`: the baseline, the request's images fetched in one chunk and handed to the
  batcher together, which is what `/predict` did before it streamed;
- `chunked`: what the server does now, chunks of the batcher's batch size.

Printed per mode: tracemalloc's peak of Python allocations during the request (image
bytes are Python `bytes`), and the peak RSS growth sampled every 5 ms, with the
ratio against the baseline of this run.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def _noise_png(megabytes: float) -> bytes:
    import numpy as np
    from PIL import Image

    side = int((megabytes * 1024 * 1024 / 3) ** 0.5)
    pixels = np.random.default_rng(0).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _run_mode(mode: str, tasks: int, image_mb: float, chunk: int) -> dict:
    import psutil
    from backend_fixtures import MULTI_CONFIG, FileServer, Route, make_app, write_thresholds
    from fastapi.testclient import TestClient

    import backend.serving.predict_stream as stream
    import backend.labelstudio.routes as routes
    from ram_model import TaggingEngine
    from ram_model.weights.testing import make_tiny_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    files = make_tiny_checkpoint(tmp / "ckpt", variant="ram_plus", seed=0)
    engine = TaggingEngine.from_config(files.engine_config(thresholds=str(write_thresholds(tmp / "t.txt"))))
    if mode == "whole":
        # One chunk as large as the request: everything downloaded, then predicted.
        routes.predict_images = _force_chunk(stream.predict_images, 10**9)
    png = _noise_png(image_mb)
    proc = psutil.Process()
    with FileServer() as server:
        for i in range(tasks):
            server.routes[f"/data/upload/1/{i}.png"] = Route(body=png)
        app = make_app(tmp, engine, label_studio_url=server.url, coalesce_max_batch=chunk)
        body = {
            "tasks": [{"id": i + 1, "data": {"image": f"/data/upload/1/{i}.png"}} for i in range(tasks)],
            "label_config": MULTI_CONFIG,
            "project": "1.0",
        }
        with TestClient(app) as client:
            client.post("/predict", json={**body, "tasks": body["tasks"][:2]})  # warm caches
            base_rss = proc.memory_info().rss
            peak_rss = base_rss
            done = threading.Event()

            def sample() -> None:
                nonlocal peak_rss
                while not done.is_set():
                    peak_rss = max(peak_rss, proc.memory_info().rss)
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            tracemalloc.start()
            started = time.perf_counter()
            response = client.post("/predict", json=body)
            seconds = time.perf_counter() - started
            _, traced_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            done.set()
            sampler.join()
    results = response.json()["results"]
    return {
        "mode": mode,
        "status": response.status_code,
        "ok_tasks": sum(1 for r in results if "result" in r),
        "image_bytes": len(png),
        "traced_peak_mb": traced_peak / 2**20,
        "rss_growth_mb": (peak_rss - base_rss) / 2**20,
        "seconds": seconds,
    }


def _force_chunk(predict_images, size: int):
    async def whole(state, jobs, ls, *, chunk_size: int):
        return await predict_images(state, jobs, ls, chunk_size=size)

    return whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--image-mb", type=float, default=2.0)
    parser.add_argument("--chunk", type=int, default=16, help="coalesce_max_batch, hence the chunk size")
    parser.add_argument("--mode", choices=["whole", "chunked"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(_run_mode(args.mode, args.tasks, args.image_mb, args.chunk)))
        return
    rows = []
    for mode in ("whole", "chunked"):
        out = subprocess.run(
            [sys.executable, __file__, "--mode", mode, "--tasks", str(args.tasks), "--image-mb", str(args.image_mb),
             "--chunk", str(args.chunk)],
            check=True, capture_output=True, text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    total_mb = args.tasks * base["image_bytes"] / 2**20
    print(f"{args.tasks} tasks x {base['image_bytes'] / 2**20:.2f} MB PNG = {total_mb:.0f} MB of images; chunk {args.chunk}")
    print(f"{'mode':<9}{'status':>7}{'ok':>5}{'traced peak MB':>16}{'ratio':>7}{'RSS growth MB':>15}{'ratio':>7}{'s':>7}")
    for row in rows:
        print(
            f"{row['mode']:<9}{row['status']:>7}{row['ok_tasks']:>5}{row['traced_peak_mb']:>16.1f}"
            f"{row['traced_peak_mb'] / base['traced_peak_mb']:>7.2f}{row['rss_growth_mb']:>15.1f}"
            f"{row['rss_growth_mb'] / max(base['rss_growth_mb'], 1e-9):>7.2f}{row['seconds']:>7.1f}"
        )


if __name__ == "__main__":
    main()
