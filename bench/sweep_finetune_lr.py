"""The learning-rate sweep behind `ram_model.finetune.DEFAULT_LR`, on the tiny synthetic shapes task.

    PYTHONPATH=. python bench/sweep_finetune_lr.py --modes head,full --lrs 1e-4,3e-4,1e-3,3e-3

Each run fine-tunes the 64-px tiny RAM++ model (random weights) on 160 generated images
whose coloured shapes decide the tags, holds out 25%, and prints validation mAP / F1 of
the base and the new model. Same data, seed and epochs for every run, so only the rate
differs. A tiny random model is not Swin-L: the sweep shows the relative order of rates
per mode (head vs full), not absolute values for real weights.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ram_model.finetune import FinetuneConfig, finetune
from ram_model.weights.testing import TINY_SWIN, make_shapes_dataset, make_tiny_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="head,full")
    ap.add_argument("--lrs", default="1e-4,3e-4,1e-3,3e-3")
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--augment", action="store_true")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lr_sweep_"))
    files = make_tiny_checkpoint(work / "model", variant="ram_plus", seed=0, swin=replace(TINY_SWIN, image_res=args.image_size))
    data = make_shapes_dataset(work / "data", args.images, seed=1, image_size=args.image_size,
                               new_classes={"unicorn": ((200, 40, 200), "circle")})
    print(f"{'mode':5s} {'lr':>7s} {'time':>6s} {'base mAP':>9s} {'new mAP':>8s} {'base F1':>8s} {'new F1':>7s} "
          f"{'unicorn AP':>10s}", flush=True)
    for mode in args.modes.split(","):
        for lr in (float(x) for x in args.lrs.split(",")):
            start = time.perf_counter()
            result = finetune(FinetuneConfig(
                data=(str(data),), base=files.engine_config(), output=str(work / f"{mode}_{lr:g}"), mode=mode,
                lr=lr, epochs=args.epochs, batch_size=args.batch_size, val_split=0.25, num_workers=0,
                new_classes=("unicorn",), augment=args.augment))
            base, new = result.metrics["base"], result.metrics["new"]
            print(f"{mode:5s} {lr:7.0e} {time.perf_counter() - start:5.1f}s {base['macro_map']:9.3f} "
                  f"{new['macro_map']:8.3f} {base['micro_f1']:8.3f} {new['micro_f1']:7.3f} "
                  f"{new['per_class']['unicorn']['ap']:10.3f}", flush=True)


if __name__ == "__main__":
    main()
