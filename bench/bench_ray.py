"""Images/s of `ram-annotate tag` in-process vs on a local Ray cluster (1 and 2 CPU actors), and the
driver's memory over a long Ray run.

    PYTHONPATH=. .venv/bin/python bench/bench_ray.py [--images 1000] [--rss-images 20000] [--cpus 2]

Every figure comes from one run of this script on one machine: ratios against the in-process run
measured here, never numbers from elsewhere. Tiny random-weight model (the test architecture) and
tiny images, so what is measured is Ray's overhead (scheduling, object store, serialisation), the
worst case; with the real Swin-L model an image costs ~2 s of CPU and the overhead vanishes. Each
run is the whole command (listing, writing JSON Lines) minus model loading and cluster start-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ram_model.cli.main import main
from ram_model.weights.testing import make_tiny_checkpoint


def _write_images(folder: Path, count: int, size: int = 32) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg")
    return folder


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _RssSampler(threading.Thread):
    """Driver RSS every 0.2 s: at the first result lines, and the peak after them."""

    def __init__(self, out: Path) -> None:
        super().__init__(daemon=True)
        self.out, self.stop, self.first, self.peak = out, threading.Event(), None, 0.0

    def run(self) -> None:
        while not self.stop.wait(0.2):
            if self.first is None and self.out.exists() and self.out.stat().st_size > 0:
                self.first = _rss_mb()
            if self.first is not None:
                self.peak = max(self.peak, _rss_mb())


def _tag(images: Path, files, out: Path, extra: list[str]) -> float:
    args = ["tag", str(images), "--checkpoint", str(files.checkpoint), "--swin-config", str(files.swin_config),
            "--head-config", str(files.head_config), "--tag-list", str(files.tag_list),
            "--tag-list-zh", str(files.tag_list_zh), "--thresholds", str(files.thresholds),
            "--device", "cpu", "--precision", "fp32", "--no-progress", "-o", str(out), *extra]
    start = time.perf_counter()
    assert main(args) == 0
    return time.perf_counter() - start


def _one_thread(run):
    """The in-process run at one torch thread, as a 1-CPU actor runs (threads restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run()
    finally:
        torch.set_num_threads(threads)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images per throughput run (default 1000)")
    parser.add_argument("--rss-images", type=int, default=20000, help="images of the driver-memory run (0: skip)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (default 2)")
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        files = make_tiny_checkpoint(root / "model", variant="ram_plus")
        images = _write_images(root / "images", args.images)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            # A warm-up of each mode (model files cached, actors' code imported once) is not timed.
            _tag(images, files, root / "warm.jsonl", ["--ray", "auto"])
            default_threads = _tag(images, files, root / "inproc-default.jsonl", [])
            one_thread = _one_thread(lambda: _tag(images, files, root / "inproc.jsonl", []))
            rows = [(f"in-process, {torch.get_num_threads()} torch threads", default_threads),
                    ("in-process, 1 torch thread", one_thread)]
            # Actors reserve 0.75 CPU so the decode tasks (0.5 CPU each) still fit beside two of them;
            # a CPU actor runs one torch thread (Ray sets OMP_NUM_THREADS from its whole CPUs).
            for actors in (1, 2):
                t = _tag(images, files, root / f"ray{actors}.jsonl",
                         ["--ray", "auto", "--ray-actors", str(actors), "--ray-cpus-per-actor", "0.75"])
                rows.append((f"ray, {actors} CPU actor(s)", t))
            # Shared hosts drift: the baseline again, last; the ratios use the mean of both.
            again = _one_thread(lambda: _tag(images, files, root / "inproc2.jsonl", []))
            rows.append(("in-process, 1 torch thread, again", again))
            baseline = (one_thread + again) / 2
            print(f"\n{args.images} images of 32x32, tiny RAM++ (random weights), fp32, {args.cpus}-CPU local cluster;"
                  " times include each run's model load in its process(es), not cluster start-up")
            print(f"{'run':38s} {'s':>7s} {'img/s':>8s} {'vs in-process 1 thread':>23s}")
            for name, t in rows:
                print(f"{name:38s} {t:7.2f} {args.images / t:8.1f} {baseline / t:22.2f}x")
            if args.rss_images:
                many = _write_images(root / "many", args.rss_images)
                out = root / "many.jsonl"
                sampler = _RssSampler(out)
                before = _rss_mb()
                sampler.start()
                t = _tag(many, files, out, ["--ray", "auto", "--ray-batch-size", "64"])
                sampler.stop.set()
                sampler.join()
                lines = sum(1 for _ in open(out))
                print(f"\ndriver RSS over {args.rss_images} images ({lines} lines written, {t:.0f} s, "
                      f"{args.rss_images / t:.0f} img/s): before {before:.0f} MB, at the first results "
                      f"{sampler.first or 0:.0f} MB, peak after them {sampler.peak:.0f} MB")
        finally:
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main_bench())
