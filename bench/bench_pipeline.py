"""The input pipeline alone: how close the tiny engine gets to the model's own speed.

    PYTHONPATH=. python bench/bench_pipeline.py [--images 512] [--batch 32] [--workers 0,1,2,3,4]

All numbers are ratios measured in this one process (the machine is shared, absolute
times are noise):

- tiny RAM++ engine at `--batch` on natural-looking 640x480 JPEG files (smooth gradients,
  shapes, mild noise: random noise decodes ~1.45x slower than photos) with each number of
  decode workers, against the model alone on pre-made tensors of the same batch;
- the cost of stacking a batch of 384x384 images in uint8 (what the workers now produce)
  against float32 (what they produced before);
- EXIF handling on a 12 MP JPEG without an orientation tag: `load_image` with and without
  `exif_transpose` (it used to copy every image even when there was nothing to rotate).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

REPO = Path(__file__).resolve().parent.parent
# After PYTHONPATH's entries, so `PYTHONPATH=/other/checkout` measures that code instead.
_PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
sys.path.insert(1 + len(_PYTHONPATH), str(REPO))

from ram_model import TaggingEngine  # noqa: E402
from ram_model.inference.images import load_image  # noqa: E402
from ram_model.weights.testing import make_tiny_checkpoint  # noqa: E402
from timing import best_time  # noqa: E402


def natural_image(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like picture: a two-colour gradient, a few filled shapes, mild sensor noise."""
    rng = np.random.default_rng(seed)
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    x = np.linspace(0.0, 1.0, width)[None, :, None]
    base = top * (1 - t) + bottom * t + 30 * np.sin(6 * x + seed)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        x1, y1 = x0 + int(rng.integers(20, width // 3)), y0 + int(rng.integers(20, height // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 4, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_jpegs(directory: Path, count: int, width: int = 640, height: int = 480) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"img_{i:05d}.jpg"
        natural_image(width, height, i).save(path, quality=90)
        paths.append(str(path))
    return paths


def bench_engine(args: argparse.Namespace, tmp: Path) -> None:
    """Every configuration once per round, rounds interleaved, best round kept: on a shared
    machine the load changes by the minute, and interleaving exposes each setting to the same."""
    files = make_tiny_checkpoint(tmp / "ckpt", variant="ram_plus", seed=0)
    paths = write_jpegs(tmp / "jpegs", args.images)
    configs: dict[str, TaggingEngine] = {}
    for workers in [int(w) for w in args.workers.split(",")]:
        configs[f"{workers} decode worker(s)"] = TaggingEngine.from_config(
            files.engine_config(batch_size=args.batch, decode_workers=workers))
    try:
        from ram_model.inference.pipeline import default_decode_workers

        configs[f"default ({default_decode_workers()}) workers"] = TaggingEngine.from_config(
            files.engine_config(batch_size=args.batch, decode_workers=None))
    except ImportError:
        print("(no ram_model.inference.pipeline here: the default was 2 decode workers)")
    base = next(iter(configs.values()))
    x = torch.randn(args.batch, 3, base.image_size, base.image_size)
    batches = max(1, args.images // args.batch)

    def model_only() -> None:
        for _ in range(batches):
            base._forward(x)

    runs = {"model only (pre-made tensors)": model_only}
    for name, engine in configs.items():
        engine.predict(paths[:args.batch])  # warm-up: threads started
        runs[f"engine, {name}"] = lambda engine=engine: engine.predict(paths)
    model_only()
    wall = {name: float("inf") for name in runs}
    cpu = {name: float("inf") for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name] = min(wall[name], time.perf_counter() - w)
            cpu[name] = min(cpu[name], time.process_time() - c)
    images = {name: batches * args.batch if name.startswith("model") else len(paths) for name in runs}
    reference = images["model only (pre-made tensors)"] / wall["model only (pre-made tensors)"]
    print(f"tiny RAM++, batch {args.batch}, {len(paths)} JPEGs 640x480, best of {args.rounds} interleaved rounds")
    for name in runs:
        speed = images[name] / wall[name]
        print(f"  {name:34s} {speed:7.0f} img/s = {speed / reference:.2f} of model only; "
              f"CPU {cpu[name] / images[name] * 1e3:.2f} ms/img")


def bench_stack(batch: int, size: int = 384) -> None:
    rng = np.random.default_rng(0)
    as_uint8 = [torch.from_numpy(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).permute(2, 0, 1)
                for _ in range(batch)]
    as_float = [t.float().div(255) for t in as_uint8]
    contiguous = [t.contiguous() for t in as_uint8]
    t_float = best_time(lambda: torch.stack(as_float), 10)
    t_uint8 = best_time(lambda: torch.stack(as_uint8), 10)
    t_contig = best_time(lambda: torch.stack(contiguous), 10)
    print(f"stack {batch} x 3x{size}x{size}: float32 {t_float * 1e3:.1f} ms, uint8 (CHW views) "
          f"{t_uint8 * 1e3:.1f} ms, uint8 (contiguous) {t_contig * 1e3:.1f} ms; "
          f"contiguous uint8 (what the decode threads make) = {t_float / t_contig:.0f}x faster than float32")


def bench_exif(tmp: Path) -> None:
    """Preparing a 12 MP photo without an orientation tag: today vs the old unconditional transpose."""
    from ram_model.model.preprocess import to_uint8_tensor  # after this change only

    path = tmp / "12mp.jpg"
    natural_image(4000, 3000, 1).save(path, quality=90)
    now = best_time(lambda: to_uint8_tensor(load_image(str(path)), 384), 5)
    old = best_time(lambda: to_uint8_tensor(ImageOps.exif_transpose(load_image(str(path), exif_transpose=False)), 384), 5)
    print(f"12 MP JPEG without orientation tag, decode + resize to 384: always transposing {old * 1e3:.0f} ms, "
          f"only with a tag {now * 1e3:.0f} ms: the old way costs +{(old / now - 1) * 100:.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", default="0,1,2,3,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated: engine, stack, exif")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    import ram_model

    print(f"code under test: {Path(ram_model.__file__).parent}, torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as name:
        tmp = Path(name)
        if "engine" not in skip:
            bench_engine(args, tmp)
        if "stack" not in skip:
            bench_stack(args.batch)
        if "exif" not in skip:
            bench_exif(tmp)


if __name__ == "__main__":
    main()
