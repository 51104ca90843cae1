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
import signal
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
from ram_model.model.config import SwinConfig  # noqa: E402

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


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def guarded(results: Results, row: dict[str, Any], measure: Callable[[], list[dict[str, Any]]]) -> None:
    """Add the rows `measure` returns; an error (out of memory, a missing kernel) becomes a row, and the run goes on."""
    device_rows: list[dict[str, Any]] = []
    try:
        device_rows = measure()
    except Exception as e:  # noqa: BLE001 - one failed point must not cost the rest of a one-shot GPU run
        results.add(**{**row, "note": f"error: {type(e).__name__}: {str(e)[:200]}"})
    for extra in device_rows:
        results.add(**{**row, **extra})


def e2e(engine: TaggingEngine, paths: list[Path], batch: int, images: int, device: torch.device) -> dict[str, Any]:
    run = cycle(paths, e2e_images(batch, images))
    run_engine(engine, run[:batch])  # warm-up
    reset_peak(device)
    img_s = rate(lambda: run_engine(engine, run), len(run), device, 0, min_calls=1)
    return dict(img_s=img_s, peak_gib=gib(device), images=len(run))


def model_only(engine: TaggingEngine, dtype: torch.dtype, inputs: list[torch.Tensor], batch: int,
               min_seconds: float) -> dict[str, Any]:
    """Images/s and peak memory of the engine's model on a ready batch on the device (its tensors freed on return)."""
    step = model_only_step(engine, dtype)
    x = torch.stack(cycle(inputs, batch)).to(engine.device)
    reset_peak(engine.device)
    img_s = rate(lambda: step(x), batch, engine.device, min_seconds)
    return dict(img_s=img_s, peak_gib=gib(engine.device))


def sweep_point(files, args: argparse.Namespace, precision: str, batch: int, paths: list[Path],
                inputs: list[torch.Tensor], workers: int, gpu_decode_missing: str | None) -> list[dict[str, Any]]:
    """Model-only and end-to-end rows for one precision and batch size; engines are freed on return."""
    device = torch.device(args.device)
    rows = []
    engine = TaggingEngine.from_config(default_config(
        files, args.device, precision=precision, batch_size=batch, decode_workers=workers))
    rows.append(dict(mode="model-only", **model_only(engine, DTYPES[precision], inputs, batch, args.min_seconds)))
    rows.append(dict(mode=f"e2e Pillow x{workers}", **e2e(engine, paths, batch, args.images, device)))
    del engine
    free(device)
    if gpu_decode_missing:
        rows.append(dict(mode="e2e nvJPEG", note=na(gpu_decode_missing)))
        return rows
    engine = TaggingEngine.from_config(default_config(
        files, args.device, precision=precision, batch_size=batch, decode_workers=workers, gpu_decode=True))
    rows.append(dict(mode="e2e nvJPEG", **e2e(engine, paths, batch, args.images, device)))
    return rows


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
            guarded(results, row, lambda: sweep_point(files, args, precision, batch, paths, inputs, workers,
                                                      gpu_decode_missing))
            free(device)

    guarded(results, dict(section="defaults", size=size), lambda: defaults_point(files, args, paths))
    free(device)
    if args.compile:
        precision = args.precisions.split(",")[0]
        row = dict(section="compile", size=size, precision=precision, batch=32)
        missing = engine_lacks("compile")
        if missing:
            results.add(**row, mode="e2e", note=na(missing))
        else:
            guarded(results, row, lambda: compile_point(files, args, precision, paths, workers))
            free(device)


def defaults_point(files, args: argparse.Namespace, paths: list[Path]) -> list[dict[str, Any]]:
    """What a user gets with no flags: EngineConfig defaults on this device."""
    device = torch.device(args.device)
    engine = TaggingEngine.from_config(default_config(files, args.device))
    return [dict(precision=engine.info().get("precision"), batch=engine.batch_size,
                 mode=f"e2e engine defaults ({decode_workers(engine)} decode workers)",
                 **e2e(engine, paths, engine.batch_size, args.images, device))]


def compile_point(files, args: argparse.Namespace, precision: str, paths: list[Path], workers: int
                  ) -> list[dict[str, Any]]:
    device = torch.device(args.device)
    engine = TaggingEngine.from_config(default_config(
        files, args.device, precision=precision, batch_size=32, decode_workers=workers, compile=True))
    start = time.perf_counter()
    run_engine(engine, cycle(paths, 32))
    compile_s = time.perf_counter() - start
    return [dict(mode=f"e2e Pillow x{workers}", note=f"first batch (compile) {compile_s:.0f} s",
                 **e2e(engine, paths, 32, args.images, device))]

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


def ours_fp32_rows(files, args: argparse.Namespace, inputs: list[torch.Tensor], x: torch.Tensor,
                   probs_out: list[np.ndarray]) -> list[dict[str, Any]]:
    """Our model-only fp32 at the official batch sizes (the official script runs fp32), and our probabilities on `x`."""
    overrides = {} if engine_lacks("precision") else {"precision": "fp32"}
    ours = TaggingEngine.from_config(default_config(files, args.device, batch_size=2, **overrides))
    probs_out.append(model_only_step(ours, torch.float32)(x))
    return [dict(mode="ours model-only fp32", batch=batch, note="",
                 **model_only(ours, torch.float32, inputs, batch, args.min_seconds))
            for batch in [int(b) for b in args.official_batches.split(",")]]


def official_forward_rows(bi, model, args: argparse.Namespace, inputs: list[torch.Tensor]) -> list[dict[str, Any]]:
    """Its `forward_ram_plus` on ready batches: fp32 as shipped, and under fp16 autocast on CUDA."""
    device = torch.device(args.device)
    rows = []
    for batch in [int(b) for b in args.official_batches.split(",")]:
        x = torch.stack(cycle(inputs, batch)).to(device)
        modes = [("official forward_ram_plus fp32 (as shipped)", contextlib.nullcontext)]
        if device.type == "cuda":
            modes.append(("official forward_ram_plus + fp16 autocast (not in its script)",
                          lambda: torch.autocast("cuda", dtype=torch.float16)))
        for mode, context in modes:
            with cuda_calls_stay_on_cpu(device), context():
                reset_peak(device)
                img_s = rate(lambda: bi.forward_ram_plus(model, x).cpu(), batch, device, args.min_seconds)
            rows.append(dict(mode=mode, batch=batch, img_s=img_s, peak_gib=gib(device)))
    return rows


def official_loader_rows(bi, model, args: argparse.Namespace, paths: list[Path], image_size: int
                         ) -> list[dict[str, Any]]:
    """Its main loop: a DataLoader over its _Dataset (which appends ".jpg") and transform, then forward + .cpu()."""
    from torch.utils.data import DataLoader

    device = torch.device(args.device)
    stems = [str(p)[: -len(".jpg")] for p in cycle(paths, max(args.images, 2 * args.official_loader_batch))]
    rows = []
    for workers in sorted({args.official_workers, args.decode_workers or os.cpu_count() or 2}):
        loader = DataLoader(dataset=bi._Dataset(stems, image_size), shuffle=False, drop_last=False,
                            pin_memory=device.type == "cuda", batch_size=args.official_loader_batch,
                            num_workers=workers)

        def loop() -> None:
            with cuda_calls_stay_on_cpu(device):
                for imgs in loader:
                    bi.forward_ram_plus(model, imgs).cpu()

        reset_peak(device)
        img_s = rate(loop, len(stems), device, 0, min_calls=1)
        rows.append(dict(mode=f"official batch_inference loop fp32, {workers} workers"
                              + (" (its default)" if workers == args.official_workers else ""),
                         batch=args.official_loader_batch, img_s=img_s, peak_gib=gib(device), images=len(stems)))
    return rows


def official_side_by_side(files, size: str, args: argparse.Namespace, paths: list[Path],
                          inputs: list[torch.Tensor], work: Path, results: Results) -> None:
    """The official code on the same device, from the same random weights in the official layout."""
    from official_code import build_official_model, import_batch_inference, is_official_checkout, official_modules

    device = torch.device(args.device)
    row = dict(section="official", size=size,
               note="" if device.type == "cuda" else "CPU check: its .cuda() calls made no-ops")
    if not args.official_code or not is_official_checkout(args.official_code):
        results.add(**{**row, "mode": "official", "note": na(f"no official checkout at {args.official_code!r}")})
        return
    x = torch.stack(cycle(inputs, 2)).to(device)
    our_probs: list[np.ndarray] = []
    guarded(results, row, lambda: ours_fp32_rows(files, args, inputs, x, our_probs))
    free(device)
    with official_modules(args.official_code) as mods:
        bi = import_batch_inference(args.official_code)
        model, msg = build_official_model(mods, files, work / "official", args.official_code)
        if msg.unexpected_keys:
            raise RuntimeError(f"official model does not match our checkpoint: {msg.unexpected_keys[:5]}")
        model = model.to(device)
        with cuda_calls_stay_on_cpu(device):
            official_probs = bi.forward_ram_plus(model, x).float().cpu().numpy()
        if our_probs:
            gap = float(np.abs(official_probs - our_probs[0]).max())
            print(f"  parity: official vs ours, fp32, max |prob diff| {gap:.2e}")
            results.meta[f"parity_max_abs_prob_diff_{size}"] = gap
        guarded(results, row, lambda: official_forward_rows(bi, model, args, inputs))
        if bi.transform_error:
            results.add(**{**row, "mode": "official batch_inference loop",
                           "note": na(f"its transform: {bi.transform_error}")})
        else:
            guarded(results, row, lambda: official_loader_rows(bi, model, args, paths, inputs[0].shape[-1]))
    free(device)


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row.get("img_s") is None:
        return str(row.get("note", ""))[:30]
    peak = f" ({row['peak_gib']:.1f})" if row.get("peak_gib") is not None else ""
    return f"{row['img_s']:.1f}{peak}"


def print_tables(results: Results, sizes: list[str]) -> None:
    """The sweep as a table (rows: precision x batch; columns: model-only and e2e modes), then the rest."""
    for size in sizes:
        rows = [r for r in results.rows if r.get("size") == size]
        sweep = [r for r in rows if r.get("section") == "sweep" and "mode" in r]
        modes = list(dict.fromkeys(r["mode"] for r in sweep))
        print(f"\n{size}: images/s (peak GiB, weights included) by precision and batch size")
        print(f"{'precision':>9} {'batch':>5} " + " ".join(f"{m:>30}" for m in modes) + "  best e2e/model-only")
        for precision, batch in dict.fromkeys((r["precision"], r["batch"]) for r in sweep):
            point = {r["mode"]: r for r in sweep if (r["precision"], r["batch"]) == (precision, batch)}
            model = (point.get("model-only") or {}).get("img_s")
            e2e = [r["img_s"] for m, r in point.items() if m.startswith("e2e") and r.get("img_s")]
            ratio = f"{max(e2e) / model:.0%}" if e2e and model else ""
            print(f"{precision:>9} {batch:>5} " + " ".join(f"{_cell(point.get(m)):>30}" for m in modes)
                  + f"  {ratio:>8}")
        for r in rows:
            if r.get("section") in ("defaults", "compile") or "mode" not in r:
                print(f"{r.get('section')} {r.get('mode', '')} [{r.get('precision', '')}, batch {r.get('batch', '')}]:"
                      f" {_cell(r)}  {r.get('note', '') if r.get('img_s') else ''}")
        official = [r for r in rows if r.get("section") == "official" and "mode" in r]
        if not official:
            continue
        base = next((r["img_s"] for r in official if "its default" in r["mode"] and r.get("img_s")), None)
        print(f"\n{size}: the official code vs ours on the same device; ratio vs its batch_inference loop as shipped")
        ours = [r for r in rows if r.get("img_s") and r.get("section") in ("sweep", "defaults")
                and r.get("mode", "").startswith("e2e")]
        for r in official + ours:
            label = r["mode"] if r["section"] == "official" else f"ours {r['mode']} {r.get('precision', '')}"
            value = r.get("img_s")
            ratio = f"{value / base:6.2f}x" if value and base else ""
            text = f"{value:10.1f}" if value else f"{'':10}"
            print(f"  {label[:72]:72} b{r.get('batch', ''):<4} {text} {ratio}  {r.get('note', '') or ''}")


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
    # A time limit (run_gpu.sh's `timeout`) sends SIGTERM: still print the tables of what was measured.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
            work = Path(tmp)
            start = time.perf_counter()
            paths = write_jpegs(work / "images", args.images)
            print(f"{describe_files(paths)} ({time.perf_counter() - start:.0f} s to draw)", flush=True)
            for size in sizes:
                start = time.perf_counter()
                files = build_checkpoint(size, work / f"ckpt-{size}")
                print(f"\n== {size}: checkpoint built in {time.perf_counter() - start:.0f} s", flush=True)
                inputs = model_only_inputs(paths[:16], SwinConfig.from_file(files.swin_config).image_res)
                # The official side by side first: it is short, and a run cut off by its time limit keeps it.
                try:
                    official_side_by_side(files, size, args, paths, inputs, work, results)
                except Exception as e:  # noqa: BLE001 - report it, keep the engine figures and the tables
                    results.add(section="official", size=size, mode="official",
                                note=f"error: {type(e).__name__}: {e}")
                engine_sweep(files, size, args, paths, inputs, results)
    finally:
        print_tables(results, sizes)
    if args.json:
        print(f"\nrows written to {args.json}")


if __name__ == "__main__":
    main()
