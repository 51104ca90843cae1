"""Engine throughput vs a naive one-image-at-a-time loop, measured in the same run.

    PYTHONPATH=. python bench/bench_engine.py --sizes tiny,full --images 16

`tiny` is the test architecture; `full` is RAM++ Swin-L @ 384 with all 4,585 classes and
random weights (about 1.3 GB of RAM, ~2-3 s per image on a 2-core CPU). The naive loop is
what a script written from the official README does: open -> resize -> forward, one image
at a time, fp32. On CUDA, `--gpu-sweep` adds fp16/bf16 throughput for batch sizes 1-128
and peak GPU memory.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ram_model import TaggingEngine
from ram_model.config import HeadConfig, SwinConfig, packaged_file
from ram_model.images import load_image
from ram_model.preprocess import to_model_input
from ram_model.testing import make_tiny_checkpoint
from ram_model.vocab import read_lines


def make_images(directory: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        arr = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
        path = directory / f"img{i:04d}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        paths.append(str(path))
    return paths


def build(size: str, directory: Path):
    if size == "tiny":
        return make_tiny_checkpoint(directory, variant="ram_plus")
    names = tuple(n for n in read_lines(packaged_file("ram_tag_list.txt")) if n)
    swin = SwinConfig.from_file(packaged_file("swin/config_swinL_384.json"))
    head = HeadConfig.from_file(packaged_file("q2l_config.json"))
    return make_tiny_checkpoint(directory, variant="ram_plus", tags=names, swin=swin, head=head)


def naive_loop(engine: TaggingEngine, paths: list[str]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for p in paths:
            x = to_model_input(load_image(p, exif_transpose=False), engine.image_size).unsqueeze(0)
            torch.sigmoid(engine.model(x.to(engine.device)))
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def engine_run(engine: TaggingEngine, paths: list[str]) -> float:
    start = time.perf_counter()
    engine.predict(paths)
    return time.perf_counter() - start


def best_of(fn, repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def gpu_sweep(files, paths: list[str]) -> None:
    print("\nGPU sweep (engine.predict, decode included)")
    print(f"{'precision':>9} {'batch':>5} {'img/s':>8} {'peak GiB':>9}")
    for precision in ("fp16", "bf16"):
        for batch in (1, 8, 32, 64, 128):
            engine = TaggingEngine.from_config(files.engine_config(device="cuda", precision=precision,
                                                                   batch_size=batch, decode_workers=8))
            run = (paths * (1 + 2 * batch // len(paths)))[: max(2 * batch, len(paths))]
            engine.predict(run[:batch])  # warm-up
            torch.cuda.reset_peak_memory_stats()
            t = engine_run(engine, run)
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(f"{precision:>9} {batch:>5} {len(run) / t:8.1f} {peak:9.2f}")
            del engine
            torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="tiny,full")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch-size", type=int, help="default: the engine's own (1 on CPU, 32 on GPU)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--gpu-sweep", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_images(tmp, args.images)
        print(f"{'size':>5} {'naive img/s':>12} {'engine img/s':>13} {'ratio':>6}")
        for size in args.sizes.split(","):
            files = build(size, tmp / size)
            engine = TaggingEngine.from_config(files.engine_config(device=args.device, batch_size=args.batch_size,
                                                                   decode_workers=2, exif_transpose=False))
            engine.predict(paths[:2])  # warm-up
            naive = best_of(lambda: naive_loop(engine, paths), args.repeats)
            ours = best_of(lambda: engine_run(engine, paths), args.repeats)
            print(f"{size:>5} {len(paths) / naive:12.2f} {len(paths) / ours:13.2f} {naive / ours:6.2f}x")
            if args.gpu_sweep and engine.device.type == "cuda" and size == "full":
                gpu_sweep(files, paths)
            del engine


if __name__ == "__main__":
    main()
