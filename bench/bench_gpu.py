"""GPU throughput: the engine at fp16/bf16 and batch 1-128, model-only and from JPEG files, beside the official code.

    PYTHONPATH=. python3 bench/bench_gpu.py --official-code shared_official          # on a CUDA machine
    PYTHONPATH=. python3 bench/bench_gpu.py --device cpu --sizes tiny --batches 1,2   # does it run? (CPU)

`bench/run_gpu.sh` is the one command a device session runs (README.md in this folder says
how the official code travels with it). Needs torch 2.11+ with CUDA; torchvision only for
the official data loader and nvJPEG. Measured, per size (`full`: RAM++ Swin-L @ 384, 4,585
classes, random weights; `tiny`: the test architecture), all in one process:

* per precision and batch size: images/s of the bare model on ready tensors (model-only:
  forward + sigmoid + copy to the host) and of `TaggingEngine.predict_iter` from JPEG files
  on disk (decode with Pillow on N workers; with nvJPEG too when the engine has
  `gpu_decode`), and peak GPU memory (`torch.cuda.max_memory_allocated`) of each;
* the engine with default settings (what a user gets with no flags);
* the official recognize-anything code on the same GPU (`--official-code`, a checkout of
  github.com/xinyu1205/recognize-anything; never copied into this repository): its
  `batch_inference.py` loop as it ships (its `_Dataset` + `get_transform` in a `DataLoader`
  with its defaults, batch 128 and 4 workers, pinned memory; its `forward_ram_plus`, fp32),
  the same loop with our worker count, and its forward alone at several batch sizes, in
  fp32 as shipped and under fp16 autocast (which its script does not do), built from the
  same random weights in the official layout (a logit parity check is printed first).

Speed does not depend on the weights, so random weights are fine. Rows the engine cannot
run yet print "n/a (engine lacks X)". Rows go to --json as they are measured (default
$OUT/bench_gpu.json when OUT is set), so a run cut short still leaves its numbers.
Takes about 4-6 minutes on one H100 with the defaults.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench"), str(REPO / "tests")]

from natural_images import describe_files, write_jpegs  # noqa: E402
from speed_common import (Results, build_checkpoint, decode_workers, default_config, engine_lacks,  # noqa: E402
                          model_only_inputs, model_only_step, na, synchronize)

from ram_model import TaggingEngine  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def rate(step: Callable[[], Any], per_call: int, device: torch.device, min_seconds: float, min_calls: int = 3
         ) -> float:
    """Images/s of `step` (one call = `per_call` images), after two warm-up calls, over >= min_seconds."""
    for _ in range(2):
        step()
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        step()
        calls += 1
    synchronize(device)
    return calls * per_call / (time.perf_counter() - start)


def cycle(items: list, count: int) -> list:
    return [items[i % len(items)] for i in range(count)]


def run_engine(engine: TaggingEngine, paths: list[Path]) -> int:
    run = engine.predict_iter if hasattr(engine, "predict_iter") else engine.predict
    done = 0
    for result in run(paths):
        if result.error:
            raise RuntimeError(result.error)
        done += 1
    return done


def e2e_images(batch: int, images: int) -> int:
    """Images per end-to-end pass: several batches, enough to fill the prefetch, bounded for batch 1."""
    return min(max(4 * batch, 64), max(images, 4 * batch))


def engine_sweep(files, size: str, args: argparse.Namespace, paths: list[Path], inputs: list[torch.Tensor],
                 results: Results) -> None:
    device = torch.device(args.device)
    workers = args.decode_workers or os.cpu_count() or 2
    gpu_decode_missing = engine_lacks("gpu_decode")
    for precision in args.precisions.split(","):
        missing = engine_lacks("precision") or engine_lacks(f"precision={precision}")
        for batch in [int(b) for b in args.batches.split(",")]:
            row: dict[str, Any] = dict(section="sweep", size=size, precision=precision, batch=batch)
            if missing:
                results.add(**row, mode="model-only", note=na(missing))
                continue
            engine = TaggingEngine.from_config(default_config(
                files, args.device, precision=precision, batch_size=batch, decode_workers=workers))
            step = model_only_step(engine, DTYPES[precision])
            x = torch.stack(cycle(inputs, batch)).to(device)
            reset_peak(device)
            img_s = rate(lambda: step(x), batch, device, args.min_seconds)
            results.add(**row, mode="model-only", img_s=img_s, peak_gib=gib(device))
            run = cycle(paths, e2e_images(batch, args.images))
            run_engine(engine, run[:batch])  # warm-up
            reset_peak(device)
            img_s = rate(lambda: run_engine(engine, run), len(run), device, 0, min_calls=1)
            results.add(**row, mode=f"e2e Pillow x{workers}", img_s=img_s, peak_gib=gib(device),
                        images=len(run))
            del engine
            gc.collect()
            if gpu_decode_missing:
                results.add(**row, mode="e2e nvJPEG", note=na(gpu_decode_missing))
                continue
            engine = TaggingEngine.from_config(default_config(
                files, args.device, precision=precision, batch_size=batch, decode_workers=workers,
                gpu_decode=True))
            run_engine(engine, run[:batch])
            reset_peak(device)
            img_s = rate(lambda: run_engine(engine, run), len(run), device, 0, min_calls=1)
            results.add(**row, mode="e2e nvJPEG", img_s=img_s, peak_gib=gib(device), images=len(run))
            del engine
            gc.collect()

    engine = TaggingEngine.from_config(default_config(files, args.device))
    info = engine.info()
    run = cycle(paths, e2e_images(engine.batch_size, args.images))
    run_engine(engine, run[:engine.batch_size])
    reset_peak(device)
    img_s = rate(lambda: run_engine(engine, run), len(run), device, 0, min_calls=1)
    results.add(section="defaults", size=size, precision=info.get("precision"), batch=engine.batch_size,
                mode=f"e2e engine defaults ({decode_workers(engine)} decode workers)", img_s=img_s,
                peak_gib=gib(device), images=len(run))
    del engine
    gc.collect()

    if args.compile:
        missing = engine_lacks("compile")
        precision = args.precisions.split(",")[0]
        if missing:
            results.add(section="compile", size=size, precision=precision, batch=32, mode="e2e", note=na(missing))
        else:
            engine = TaggingEngine.from_config(default_config(
                files, args.device, precision=precision, batch_size=32, decode_workers=workers, compile=True))
            run = cycle(paths, e2e_images(32, args.images))
            start = time.perf_counter()
            run_engine(engine, run[:32])
            compile_s = time.perf_counter() - start
            img_s = rate(lambda: run_engine(engine, run), len(run), device, 0, min_calls=1)
            results.add(section="compile", size=size, precision=precision, batch=32, mode=f"e2e Pillow x{workers}",
                        img_s=img_s, note=f"first batch (compile) {compile_s:.0f} s")
            del engine
            gc.collect()


@contextlib.contextmanager
def cuda_calls_stay_on_cpu(device: torch.device) -> Iterator[None]:
    """batch_inference.py calls `.cuda()` unconditionally; on a CPU check, make that a no-op."""
    if device.type == "cuda":
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def official_side_by_side(files, size: str, args: argparse.Namespace, paths: list[Path],
                          inputs: list[torch.Tensor], work: Path, results: Results) -> None:
    from official_code import build_official_model, import_batch_inference, is_official_checkout, official_modules

    device = torch.device(args.device)
    row = dict(section="official", size=size)
    if not args.official_code or not is_official_checkout(args.official_code):
        results.add(**row, mode="official", note=na(f"no official checkout at {args.official_code!r}"))
        return
    cpu_note = "" if device.type == "cuda" else "CPU check: its .cuda() calls made no-ops"
    with official_modules(args.official_code) as mods:
        bi = import_batch_inference(args.official_code)
        model, msg = build_official_model(mods, files, work / "official", args.official_code)
        if msg.unexpected_keys:
            raise RuntimeError(f"official model does not match our checkpoint: {msg.unexpected_keys[:5]}")
        model = model.to(device)
        forward = bi.forward_ram_plus

        ours = TaggingEngine.from_config(default_config(files, args.device, precision="fp32", batch_size=2)
                                         if not engine_lacks("precision") else default_config(files, args.device))
        x = torch.stack(cycle(inputs, 2)).to(device)
        with cuda_calls_stay_on_cpu(device):
            official_probs = forward(model, x).float().cpu().numpy()
        our_probs = model_only_step(ours, torch.float32)(x)
        print(f"  parity: official vs ours, fp32, max |prob diff| {np.abs(official_probs - our_probs).max():.2e}")
        fp32_step = model_only_step(ours, torch.float32)
        for batch in [int(b) for b in args.official_batches.split(",")]:
            xb = torch.stack(cycle(inputs, batch)).to(device)
            with cuda_calls_stay_on_cpu(device):
                reset_peak(device)
                img_s = rate(lambda: forward(model, xb).cpu(), batch, device, args.min_seconds)
                results.add(**row, mode="official forward_ram_plus fp32 (as shipped)", batch=batch, img_s=img_s,
                            peak_gib=gib(device), note=cpu_note)
                if device.type == "cuda":
                    reset_peak(device)
                    with torch.autocast("cuda", dtype=torch.float16):
                        img_s = rate(lambda: forward(model, xb).cpu(), batch, device, args.min_seconds)
                    results.add(**row, mode="official forward_ram_plus + fp16 autocast (not in its script)",
                                batch=batch, img_s=img_s, peak_gib=gib(device))
            reset_peak(device)
            img_s = rate(lambda: fp32_step(xb), batch, device, args.min_seconds)
            results.add(**row, mode="ours model-only fp32", batch=batch, img_s=img_s, peak_gib=gib(device))
        del ours
        gc.collect()

        # Its main loop: DataLoader over its _Dataset (appends ".jpg") with its transform, then forward + .cpu().
        if bi.transform_error:
            results.add(**row, mode="official batch_inference loop", note=na(f"its transform: {bi.transform_error}"))
            return
        from torch.utils.data import DataLoader

        stems = [str(p)[: -len(".jpg")] for p in cycle(paths, max(args.images, 2 * args.official_loader_batch))]
        image_size = inputs[0].shape[-1]
        ours_workers = args.decode_workers or os.cpu_count() or 2
        for workers in sorted({args.official_workers, ours_workers}):
            loader = DataLoader(dataset=bi._Dataset(stems, image_size), shuffle=False, drop_last=False,
                                pin_memory=device.type == "cuda", batch_size=args.official_loader_batch,
                                num_workers=workers)

            def loop() -> None:
                with cuda_calls_stay_on_cpu(device):
                    for imgs in loader:
                        forward(model, imgs).cpu()

            reset_peak(device)
            img_s = rate(loop, len(stems), device, 0, min_calls=1)
            results.add(**row, mode=f"official batch_inference loop fp32, {workers} workers"
                                    + (" (its default)" if workers == args.official_workers else ""),
                        batch=args.official_loader_batch, img_s=img_s, peak_gib=gib(device), images=len(stems),
                        note=cpu_note)
    gc.collect()


def print_tables(results: Results, sizes: list[str]) -> None:
    for size in sizes:
        sweep = [r for r in results.rows if r.get("section") == "sweep" and r["size"] == size]
        modes = list(dict.fromkeys(r["mode"] for r in sweep))
        print(f"\n{size}: images/s (peak GiB) by precision and batch size")
        print(f"{'precision':>9} {'batch':>5} " + " ".join(f"{m:>24}" for m in modes) + "   e2e/model-only")
        keys = list(dict.fromkeys((r["precision"], r["batch"]) for r in sweep))
        for precision, batch in keys:
            cells, model_only = [], None
            for m in modes:
                r = next((r for r in sweep if (r["precision"], r["batch"], r["mode"]) == (precision, batch, m)), None)
                if r is None or r.get("img_s") is None:
                    cells.append(f"{(r or {}).get('note', '')[:24]:>24}")
                    continue
                peak = f" ({r['peak_gib']:.1f})" if r.get("peak_gib") is not None else ""
                cells.append(f"{r['img_s']:>24.1f}"[:-len(peak)] + peak if peak else f"{r['img_s']:>24.1f}")
                if m == "model-only":
                    model_only = r["img_s"]
            e2e = [r["img_s"] for r in sweep if (r["precision"], r["batch"]) == (precision, batch)
                   and r["mode"].startswith("e2e") and r.get("img_s")]
            ratio = f"{max(e2e) / model_only:.0%}" if e2e and model_only else ""
            print(f"{precision:>9} {batch:>5} " + " ".join(cells) + f"   {ratio:>8}")
        for r in results.rows:
            if r.get("section") in ("defaults", "compile") and r["size"] == size:
                value = f"{r['img_s']:.1f} img/s" if r.get("img_s") else r.get("note")
                print(f"{r['mode']} [{r['precision']}, batch {r['batch']}]: {value}  {r.get('note', '') or ''}")
        official = [r for r in results.rows if r.get("section") == "official" and r["size"] == size]
        if official:
            base = next((r["img_s"] for r in official if "its default" in r["mode"] and r.get("img_s")), None)
            print(f"\n{size}: official recognize-anything vs ours, same GPU; ratio vs its batch_inference as shipped")
            rows = official + [r for r in results.rows if r.get("size") == size and r.get("img_s")
                               and r.get("section") in ("sweep", "defaults") and r["mode"] != "model-only"]
            for r in rows:
                label = r["mode"] if r["section"] == "official" else f"ours {r['mode']} {r['precision']}"
                value = r.get("img_s")
                ratio = f"{value / base:6.2f}x" if value and base else ""
                text = f"{value:10.1f}" if value else f"{'':10}"
                print(f"  {label[:70]:70} b{r.get('batch', ''):<4} {text} {ratio}  {r.get('note', '') or ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", default="full")
    ap.add_argument("--batches", default="1,8,16,32,64,128")
    ap.add_argument("--precisions", default="fp16,bf16")
    ap.add_argument("--images", type=int, default=256, help="distinct 640x480 JPEG files (cycled for longer runs)")
    ap.add_argument("--decode-workers", type=int, help="Pillow decode workers (default: every core)")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="minimum timed span of each model-only figure")
    ap.add_argument("--official-code", help="a recognize-anything checkout (see bench/README.md)")
    ap.add_argument("--official-batches", default="1,32,128")
    ap.add_argument("--official-loader-batch", type=int, default=128, help="its --batch-size default")
    ap.add_argument("--official-workers", type=int, default=4, help="its --num-workers default")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile at batch 32 (slow to compile)")
    ap.add_argument("--json", default=os.path.join(os.environ["OUT"], "bench_gpu.json") if os.environ.get("OUT")
                    else None)
    args = ap.parse_args()
    device = torch.device(args.device)
    meta: dict[str, Any] = {"torch": torch.__version__, "cores": os.cpu_count(), "device": str(device)}
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
        meta["cuda"] = torch.version.cuda
    try:
        import torchvision

        meta["torchvision"] = torchvision.__version__
    except ImportError:
        meta["torchvision"] = None
    print("  ".join(f"{k}={v}" for k, v in meta.items()), flush=True)
    results = Results(args.json, meta)
    sizes = [s.strip() for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        paths = write_jpegs(work / "images", args.images)
        print(f"{describe_files(paths)} ({time.perf_counter() - start:.0f} s to draw)", flush=True)
        for size in sizes:
            start = time.perf_counter()
            files = build_checkpoint(size, work / f"ckpt-{size}")
            print(f"\n== {size}: checkpoint built in {time.perf_counter() - start:.0f} s", flush=True)
            probe = TaggingEngine.from_config(default_config(files, args.device))
            inputs = model_only_inputs(paths[:16], probe.image_size)
            del probe
            engine_sweep(files, size, args, paths, inputs, results)
            official_side_by_side(files, size, args, paths, inputs, work, results)
    print_tables(results, sizes)
    if args.json:
        print(f"\nrows written to {args.json}")


if __name__ == "__main__":
    main()
