"""Engine speed against a naive loop and the bare model, and the accuracy cost of reduced precision, in one run.

    PYTHONPATH=. .venv/bin/python bench/bench_engine.py                   # tiny and full, ~6-8 min on 2 idle cores
    PYTHONPATH=. .venv/bin/python bench/bench_engine.py --threads 1       # on shared cores (see bench/README.md)
    PYTHONPATH=. .venv/bin/python bench/bench_engine.py --sizes tiny      # ~1 min
    PYTHONPATH=. .venv/bin/python bench/bench_engine.py --sizes full --full-images 16 --full-repeats 2 --compile

Sizes: `tiny` is the test architecture (64 px, 48 tags); `full` is RAM++ Swin-L @ 384 with all
4,585 classes and random weights (about 1.3 GB; ~2.4 s per image in fp32 on a 2-core CPU, so
the full-size part dominates the run time: about 1 min per 8 images per configuration, plus
~1 min per reduced-precision pass where bf16 has no hardware support). Inputs are
natural-looking 640x480 JPEGs (bench/natural_images.py), not random noise.

Every figure is images per second, best of N, and every ratio is against the naive fp32
loop measured in the same process: what a script written from the official README does
(open -> resize -> forward, one image at a time, fp32, eager). Per size:

* naive fp32 loop; model-only (pre-made tensors, no decoding, the engine's batch size and
  precision; at tiny size also at batch 32); `TaggingEngine` with default settings; the
  engine at fp32 / auto / compile; the engine computing only a 50-class project
  (`EngineConfig(classes=...)`; 24 classes at tiny size, which has 48);
* the accuracy cost of the reduced precision `auto` picks (bf16 explicitly, labelled so,
  where auto is fp32 as on CPUs without AMX): max |prob diff| vs fp32, and fired tags
  that change, at the official class thresholds and at per-class median thresholds
  (random weights put most probabilities far from the official thresholds, so few tags
  fire there and few can change; real weights put thresholds where probabilities fall,
  which the medians imitate: the stricter test).

A configuration the current engine does not support prints "n/a (engine lacks X)".
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from natural_images import describe_files, has_orientation_tag, write_jpegs  # noqa: E402
from speed_common import (Results, build_checkpoint, decode_workers, default_config, engine_dtype,  # noqa: E402
                          engine_lacks, model_only_inputs, model_only_step, na, project_classes, timed)

from ram_model import TaggingEngine  # noqa: E402
from ram_model.inference.images import load_image  # noqa: E402
from ram_model.model.preprocess import to_model_input  # noqa: E402


def naive_loop(model: torch.nn.Module, paths: list[Path], size: int, device: torch.device) -> np.ndarray:
    """The official README's way: open -> resize -> forward, one image at a time, fp32."""
    out = []
    with torch.inference_mode():
        for p in paths:
            x = to_model_input(load_image(p, exif_transpose=False), size).unsqueeze(0)
            out.append(torch.sigmoid(model(x.to(device))).cpu().numpy()[0])
    return np.stack(out)


def engine_probs(engine: TaggingEngine, paths: list[Path]) -> np.ndarray:
    """Run the engine the way integrations do (predict_iter where it exists) -> (N, K) probabilities."""
    run = engine.predict_iter if hasattr(engine, "predict_iter") else engine.predict
    rows = [r.probs for r in run(paths)]
    return np.stack(rows)


def model_only(engine: TaggingEngine, inputs: list[torch.Tensor], batch: int, repeats: int) -> float:
    step = model_only_step(engine)
    batches = [torch.stack(inputs[i:i + batch]) for i in range(0, len(inputs), batch)]
    step(batches[0])  # warm-up
    seconds, _ = timed(lambda: [step(b) for b in batches], repeats, engine.device)
    return len(inputs) / seconds


def timed_engine(engine: TaggingEngine, paths: list[Path], repeats: int) -> tuple[float, np.ndarray]:
    engine_probs(engine, paths[:2])  # warm-up (and compile, where on)
    seconds, probs = timed(lambda: engine_probs(engine, paths), repeats, engine.device)
    return len(paths) / seconds, probs


def restricted_view(engine: TaggingEngine, classes: tuple[str, ...]) -> TaggingEngine | str:
    if hasattr(engine, "restricted"):
        return engine.restricted(classes)
    return na(engine_lacks("restricted") or "engine lacks restricted")


def fired_changes(reference: np.ndarray, other: np.ndarray, thresholds: np.ndarray) -> tuple[int, int]:
    """(fired tags that differ, fired tags in the reference) over all images."""
    a, b = reference > thresholds, other > thresholds
    return int((a != b).sum()), int(a.sum())


def accuracy_rows(results: Results, size: str, label: str, fp32: np.ndarray, reduced: np.ndarray,
                  official: np.ndarray) -> None:
    medians = np.median(fp32, axis=0)
    changed_off, fired_off = fired_changes(fp32, reduced, official)
    changed_med, fired_med = fired_changes(fp32, reduced, medians)
    results.add(section="accuracy", size=size, config=label, images=len(fp32),
                max_abs_prob_diff=float(np.abs(fp32 - reduced).max()),
                changed_official=changed_off, fired_official=fired_off,
                changed_median=changed_med, fired_median=fired_med,
                mean_abs_dist_to_official_threshold=float(np.abs(fp32 - official).mean()))


def bench_size(size: str, args: argparse.Namespace, work: Path, results: Results) -> None:
    full = size == "full"
    count = args.full_images if full else args.images
    repeats = args.full_repeats if full else args.repeats
    paths = write_jpegs(work / "images", count)
    print(f"\n== {size}: {describe_files(paths)}; best of {repeats}", flush=True)
    files = build_checkpoint(size, work / f"ckpt-{size}")
    device = args.device

    def row(config: str, img_s: float | None, note: str = "", **extra) -> None:
        results.add(section="speed", size=size, config=config, img_s=img_s, note=note, **extra)

    fp32_overrides = {} if engine_lacks("precision") else {"precision": "fp32"}
    batch_override = {"batch_size": args.batch_size} if args.batch_size else {}

    # fp32 engine: the naive loop and fp32 model-only use its (fp32, eager) model.
    engine = TaggingEngine.from_config(default_config(files, device, **fp32_overrides, **batch_override))
    inputs = model_only_inputs(paths, engine.image_size)
    naive_loop(engine.model, paths[:1], engine.image_size, engine.device)  # warm-up
    seconds, naive_probs = timed(lambda: naive_loop(engine.model, paths, engine.image_size, engine.device),
                                 repeats, engine.device)
    naive = len(paths) / seconds
    row("naive fp32 loop (batch 1)", naive, baseline=True)
    row(f"model-only fp32, batch {engine.batch_size}", model_only(engine, inputs, engine.batch_size, repeats))
    img_s, fp32_probs = timed_engine(engine, paths, repeats)
    row(f"engine fp32, batch {engine.batch_size}", img_s)
    upright = [i for i in range(len(paths)) if not has_orientation_tag(i)]  # the naive loop ignores EXIF
    gap = float(np.abs(fp32_probs[upright] - naive_probs[upright]).max())
    print(f"  (engine fp32 vs naive loop, images without an orientation tag: max |prob diff| {gap:.2e})")
    classes = project_classes(files, 50 if full else 24)
    view = restricted_view(engine, classes)
    if isinstance(view, str):
        row(f"engine fp32, {len(classes)} classes", None, view)
    else:
        img_s, sub = timed_engine(view, paths, repeats)
        index = [list(engine.vocab.names).index(c) for c in classes]
        row(f"engine fp32, {len(classes)} classes", img_s,
            f"max |diff| vs full model {float(np.abs(sub - fp32_probs[:, index]).max()):.1e}")
        del view
    official_thresholds = np.asarray(engine.vocab.thresholds, dtype=np.float32)
    del engine
    gc.collect()

    # Default settings: what `TaggingEngine.from_config(EngineConfig(checkpoint=...))` gives.
    engine = TaggingEngine.from_config(default_config(files, device, **batch_override))
    dtype = engine_dtype(engine)
    label = f"engine defaults ({str(dtype).replace('torch.', '')}, batch {engine.batch_size}, " \
            f"{decode_workers(engine)} decode workers)"
    img_s, auto_probs = timed_engine(engine, paths, repeats)
    row(label, img_s, default=True)
    if dtype != torch.float32:
        row(f"model-only {str(dtype).replace('torch.', '')}, batch {engine.batch_size}",
            model_only(engine, inputs, engine.batch_size, repeats))
    view = restricted_view(engine, classes)
    if isinstance(view, str):
        row(f"engine defaults, {len(classes)} classes", None, view)
    else:
        img_s, _ = timed_engine(view, paths, repeats)
        row(f"engine defaults, {len(classes)} classes", img_s)
        del view
    if not full:
        # The done-when: engine >= 80 % of model-only at batch 32 with the default decode workers.
        batched = TaggingEngine.from_config(default_config(files, device, batch_size=32))
        model_32 = model_only(batched, inputs, 32, repeats)
        engine_32, exact_probs = timed_engine(batched, paths, repeats)
        row("model-only, batch 32", model_32)
        row(f"engine defaults, batch 32 ({decode_workers(batched)} decode workers)", engine_32,
            f"{engine_32 / model_32:.0%} of model-only at batch 32")
        del batched
        # Decoding bounds the tiny model: the opt-in reduced-scale JPEG decode, and what it changes.
        fast = TaggingEngine.from_config(default_config(files, device, batch_size=32, fast_jpeg_decode=True))
        fast_32, fast_probs = timed_engine(fast, paths, repeats)
        row("engine defaults + --fast-jpeg-decode, batch 32", fast_32,
            f"{fast_32 / model_32:.0%} of model-only; max |prob diff| vs full decode "
            f"{np.nanmax(np.abs(fast_probs - exact_probs)):.1e}")
        del fast
    del engine
    gc.collect()

    # Reduced precision: the one auto picks, or bf16 explicitly where auto is fp32.
    accuracy_paths = paths[:args.full_accuracy_images] if full else paths
    if dtype != torch.float32:
        accuracy_rows(results, size, f"auto = {str(dtype).replace('torch.', '')}", fp32_probs, auto_probs,
                      official_thresholds)
    elif engine_lacks("precision=bf16"):
        results.add(section="accuracy", size=size, config="bf16", note=na(engine_lacks("precision=bf16")))
    else:
        engine = TaggingEngine.from_config(default_config(files, device, precision="bf16", **batch_override))
        seconds, bf16_probs = timed(lambda: engine_probs(engine, accuracy_paths), 1, engine.device)
        row(f"engine bf16 (explicit; auto is fp32 here), batch {engine.batch_size}", len(accuracy_paths) / seconds,
            f"{len(accuracy_paths)} images, 1 pass, no warm-up")
        accuracy_rows(results, size, "bf16 (explicit: auto is fp32 on this machine)",
                      fp32_probs[:len(accuracy_paths)], bf16_probs, official_thresholds)
        del engine
        gc.collect()

    if not args.compile:
        row("engine compile", None, "not run (pass --compile: 30-70 s to compile per shape at full size)")
    elif engine_lacks("compile"):
        row("engine compile", None, na(engine_lacks("compile")))
    else:
        engine = TaggingEngine.from_config(default_config(files, device, compile=True, **batch_override))
        img_s, _ = timed_engine(engine, paths, repeats)
        row(f"engine defaults + compile, batch {engine.batch_size}", img_s, "compile time excluded (warm-up)")
        del engine
        gc.collect()

    for r in results.rows:
        if r.get("section") == "speed" and r.get("size") == size and r.get("img_s"):
            r["ratio"] = r["img_s"] / naive


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,full")
    ap.add_argument("--images", type=int, default=128, help="images at tiny size")
    ap.add_argument("--repeats", type=int, default=3, help="best of N at tiny size")
    ap.add_argument("--full-images", type=int, default=8, help="images at full size (~2.4 s each per config)")
    ap.add_argument("--full-repeats", type=int, default=1)
    ap.add_argument("--full-accuracy-images", type=int, default=4,
                    help="images for the reduced-precision pass at full size (bf16 is ~7x slower without AMX)")
    ap.add_argument("--batch-size", type=int, help="engine batch size (default: the engine's own)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--gpu-sweep", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gpu_sweep:
        ap.error("the GPU sweep moved to bench/bench_gpu.py (bench/run_gpu.sh runs it)")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"device {args.device}, AMX {getattr(torch.cpu, '_is_amx_tile_supported', lambda: 'unknown')()}")
    results = Results(args.json, meta={"torch": torch.__version__, "cores": os.cpu_count()})
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        for size in args.sizes.split(","):
            bench_size(size.strip(), args, Path(tmp) / size.strip(), results)
    speed = [("config", "configuration", ""), ("img_s", "img/s", ".3g"), ("ratio", "vs naive", ".2f"),
             ("note", "note", "")]
    for size in args.sizes.split(","):
        print()
        print(results.table(speed, f"{size.strip()}: images/s, ratio vs the naive fp32 loop (same run)",
                            lambda r, s=size.strip(): r.get("section") == "speed" and r["size"] == s))
    acc = [("size", "size", ""), ("config", "precision", ""), ("images", "images", "d"),
           ("max_abs_prob_diff", "max |dp|", ".2e"), ("changed_official", "changed@official", "d"),
           ("fired_official", "fired@official", "d"), ("changed_median", "changed@median", "d"),
           ("fired_median", "fired@median", "d"), ("note", "note", "")]
    print()
    print(results.table(acc, "accuracy cost vs fp32 (fired tags: official thresholds / per-class median "
                             "thresholds; random weights, so see the docstring)",
                        lambda r: r.get("section") == "accuracy"))
    results.save()


if __name__ == "__main__":
    main()
