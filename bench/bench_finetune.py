"""Fine-tuning step time and peak memory: head-only vs full, with and without gradient checkpointing.

    PYTHONPATH=. python bench/bench_finetune.py                      # CPU: tiny and Swin-T sized, a few steps
    PYTHONPATH=. python bench/bench_finetune.py --device cuda --sizes full --batch-sizes 8,16,32

Every configuration runs in its own process (so peak memory is its own) on random
weights and random images; ratios are against head-only without checkpointing, for the
same size and batch, measured in the same run. `full` is RAM++ Swin-L @ 384 with all
4,585 classes (51 description rows each); on CUDA it trains in bf16 autocast. Peak memory
is `torch.cuda.max_memory_allocated` on CUDA and the growth of the process's peak RSS
(VmHWM, reset before the first step) on CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from ram_model.model.config import HeadConfig, SwinConfig, packaged_file
from ram_model.finetune.loss import asymmetric_loss
from ram_model.finetune.model_setup import (enable_gradient_checkpointing, trainable_parameter_groups,
                                            training_autocast_dtype)
from ram_model.model.ram import RAMTagger
from ram_model.weights.testing import TINY_HEAD, TINY_SWIN, random_init_

SIZES = {
    # name: (swin, head, classes, variant, default batch sizes)
    "tiny": (TINY_SWIN, TINY_HEAD, 48, "ram_plus", (8,)),
    "swin-t": (SwinConfig(image_res=224, window_size=7, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                          vision_width=768), None, 4585, "ram", (2,)),
    "full": (None, None, 4585, "ram_plus", (8, 16, 32)),
}
VARIANTS = (("head", False), ("head", True), ("full", False), ("full", True))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_one(spec: dict) -> dict:
    """One (size, batch, mode, checkpointing) measurement in this process."""
    torch.manual_seed(0)
    swin, head, classes, variant, _ = SIZES[spec["size"]]
    swin = swin or SwinConfig.from_file(packaged_file("swin/config_swinL_384.json"))
    head = head or HeadConfig.from_file(packaged_file("q2l_config.json"))
    device = torch.device(spec["device"])
    model = random_init_(RAMTagger(swin, head, classes, variant), 0)
    groups = trainable_parameter_groups(model, mode=spec["mode"], unfreeze_stages=0, old_classes=classes,
                                        weight_decay=0.05)
    if spec["checkpointing"]:
        enable_gradient_checkpointing(model)
    model.to(device).train()
    optimizer = torch.optim.AdamW(groups, lr=1e-5)
    amp = training_autocast_dtype("auto", device)
    batch = spec["batch"]
    images = torch.randn(batch, 3, swin.image_res, swin.image_res, device=device)
    targets = (torch.rand(batch, classes, device=device) < 0.01).float()

    def step() -> None:
        with torch.autocast(device.type, dtype=amp) if amp else torch.autocast(device.type, enabled=False):
            logits = model(images)
        asymmetric_loss(logits, targets).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocator, optimizer state
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        except OSError:
            pass
        before = _status_kb("VmRSS") * 1024
    times = []
    for _ in range(spec["steps"]):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _status_kb("VmHWM") * 1024
    trainable = sum(p.numel() for g in groups for p in g["params"])
    return {**spec, "step_s": statistics.median(times), "peak_mib": peak / 2**20,
            "peak_over_start_mib": (peak - before) / 2**20, "trainable_params": trainable,
            "precision": str(amp or torch.float32).replace("torch.", "")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default="tiny,swin-t")
    ap.add_argument("--batch-sizes", help="comma-separated; default per size (tiny 8, swin-t 2, full 8,16,32)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in each child (0: torch's default)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(run_one(json.loads(args.one))))
        return
    rows = []
    for size in args.sizes.split(","):
        batches = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else SIZES[size][4]
        for batch in batches:
            baseline = None
            for mode, ckpt in VARIANTS:
                spec = {"size": size, "batch": batch, "mode": mode, "checkpointing": ckpt, "device": args.device,
                        "steps": args.steps}
                proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec), "--threads",
                                       str(args.threads)], capture_output=True, text=True,
                                      env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", ".")})
                if proc.returncode != 0:
                    tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
                    print(f"{size} b{batch} {mode} ckpt={ckpt}: failed ({tail[0]})", flush=True)
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                if mode == "head" and not ckpt:
                    baseline = row
                if baseline:
                    row["time_ratio"] = row["step_s"] / baseline["step_s"]
                    row["mem_ratio"] = row["peak_over_start_mib"] / max(baseline["peak_over_start_mib"], 1e-9)
                rows.append(row)
                print(f"{size:7s} batch {batch:3d} {mode:4s} ckpt={'yes' if ckpt else 'no ':3s} "
                      f"{row['precision']:8s} step {row['step_s']*1000:9.1f} ms (x{row.get('time_ratio', 1):.2f})  "
                      f"peak +{row['peak_over_start_mib']:8.1f} MiB (x{row.get('mem_ratio', 1):.2f})  "
                      f"trainable {row['trainable_params'] / 1e6:7.2f} M", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
