"""Evidence maps: the pointing game after a brief fine-tune, and their cost against plain tagging.

    PYTHONPATH=. .venv/bin/python bench/bench_evidence.py                 # both parts, tiny models (~5-10 min)
    PYTHONPATH=. .venv/bin/python bench/bench_evidence.py --speed-sizes tiny,full

Pointing game: generated pictures hold one to three coloured shapes (the six classes of
`ram_model.weights.testing.SHAPE_CLASSES`) at random places and sizes, so each tag's object box is
known. A tiny RAM++ at 128 px (a 4 x 4 token grid) is fine-tuned briefly on such pictures
(`ram_model.finetune`); on held-out pictures each present tag's map must peak (the centre
of its highest cell) inside that tag's object box. Baselines measured in the same run: the
image centre, a uniformly random point (its expected hit rate: the mean box area), and the
same maps from the model before fine-tuning. Box IoU: the evidence box against the object box.

Speed: seconds of `engine.predict` against `engine.predict(..., evidence=the top tags)`, the same
engine and images, the two interleaved round by round (a busy machine slows both alike); the
median per-round ratio is the cost of the maps (CPU, fp32).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ram_model import EngineConfig, TaggingEngine
from ram_model.model.config import SwinConfig
from ram_model.evidence import EvidenceRequest, token_grid
from ram_model.finetune import FinetuneConfig, finetune
from ram_model.weights.testing import SHAPE_CLASSES, TINY_TAGS, draw_shape, make_tiny_checkpoint

SIZE = 128
SWIN_128 = SwinConfig(image_res=SIZE, window_size=4, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(2, 2, 4, 4),
                      vision_width=128)
CLASSES = tuple(SHAPE_CLASSES)


def draw_scene(rng: np.random.Generator) -> tuple[Image.Image, dict[str, list[float]]]:
    """A picture with 1-3 shapes at random, non-overlapping places; {tag: [x0, y0, x1, y1] normalised}."""
    img = Image.fromarray(rng.integers(90, 150, size=(SIZE, SIZE, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    boxes: dict[str, list[float]] = {}
    taken: list[tuple[int, int, int, int]] = []
    for name in rng.choice(CLASSES, size=int(rng.integers(1, 4)), replace=False):
        colour, shape = SHAPE_CLASSES[str(name)]
        for _ in range(50):
            extent = int(SIZE * rng.uniform(0.22, 0.4))
            x0, y0 = (int(v) for v in rng.integers(0, SIZE - extent, size=2))
            box = (x0, y0, x0 + extent, y0 + extent)
            if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in taken):
                break
        else:
            continue
        taken.append(box)
        draw_shape(draw, box, colour, shape)
        boxes[str(name)] = [v / SIZE for v in (box[0], box[1], box[2], box[3])]
    return img, boxes


def write_dataset(directory: Path, count: int, seed: int) -> tuple[Path, list[tuple[Path, dict]]]:
    """Pictures plus the official finetune JSON for them (ids: positions in TINY_TAGS)."""
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries, scenes = [], []
    for i in range(count):
        img, boxes = draw_scene(rng)
        path = directory / "images" / f"scene_{seed}_{i:04d}.png"
        img.save(path)
        ids = sorted(TINY_TAGS.index(n) for n in boxes)
        entries.append({"image_path": f"images/{path.name}", "caption": [", ".join(boxes)],
                        "union_label_id": ids, "parse_label_id": [ids]})
        scenes.append((path, boxes))
    data = directory / "finetune.json"
    data.write_text(json.dumps(entries), encoding="utf-8")
    return data, scenes


def _inside(point: tuple[float, float], box: list[float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _iou(a: list[float] | None, b: list[float]) -> float:
    if a is None:
        return 0.0
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def pointing_game(engine: TaggingEngine, scenes: list[tuple[Path, dict]]) -> dict[str, float]:
    preds = engine.predict([p for p, _ in scenes], evidence=EvidenceRequest(tags=CLASSES))
    hits = centre = iou = area = 0.0
    total = 0
    for pred, (_, boxes) in zip(preds, scenes):
        by_name = {e.name: e for e in pred.evidence}
        for name, box in boxes.items():
            heat = by_name[name].map
            r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
            peak = ((c + 0.5) / heat.shape[1], (r + 0.5) / heat.shape[0])
            hits += _inside(peak, box)
            centre += _inside((0.5, 0.5), box)
            iou += _iou(by_name[name].box, box)
            area += (box[2] - box[0]) * (box[3] - box[1])
            total += 1
    return {"objects": total, "pointing": hits / total, "centre_baseline": centre / total,
            "random_point_baseline": area / total, "mean_box_iou": iou / total}


def _seconds(engine: TaggingEngine, images: list, evidence: EvidenceRequest | None) -> float:
    start = time.perf_counter()
    engine.predict(images, evidence=evidence)
    return time.perf_counter() - start


def speed(size: str, folder: Path, images: int, repeats: int, top_k: int) -> dict[str, object]:
    """Plain tagging vs tagging + maps for the `top_k` best tags of each image (fired tags on real weights)."""
    if size == "full":
        import sys
        sys.path.insert(0, str(Path(__file__).parent))
        from speed_common import build_checkpoint

        files = build_checkpoint("full", folder / "full")
    else:
        files = make_tiny_checkpoint(folder / "tiny_speed", variant="ram_plus", swin=SWIN_128)
    engine = TaggingEngine.from_config(files.engine_config(precision="fp32", batch_size=4 if size == "tiny" else 1,
                                                           decode_workers=1))
    rng = np.random.default_rng(5)
    pictures = [Image.fromarray(rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)) for _ in range(images)]
    top = EvidenceRequest(select=lambda probs: np.argsort(-probs)[:top_k].tolist())
    engine.predict(pictures[:2])  # warm-up
    engine.predict(pictures[:2], evidence=top)
    plain, with_maps = [], []
    for _ in range(repeats):  # interleaved, so a busy neighbour slows both alike
        plain.append(_seconds(engine, pictures, None))
        with_maps.append(_seconds(engine, pictures, top))
    ratios = sorted(m / p for p, m in zip(plain, with_maps))
    grid = token_grid(engine._loaded.swin)
    return {"size": size, "classes": len(engine.vocab), "grid": f"{grid}x{grid}", "mapped_tags_per_image": top_k,
            "plain_img_s": round(len(pictures) / min(plain), 2),
            "evidence_img_s": round(len(pictures) / min(with_maps), 2),
            "evidence_cost_ratio_median": round(ratios[len(ratios) // 2], 3),
            "evidence_cost_ratios": [round(r, 3) for r in ratios]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=240)
    ap.add_argument("--test", type=int, default=120)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--mode", default="full", choices=["head", "full"])
    ap.add_argument("--lr", type=float, default=3e-4, help="the sweep's best rate for a random backbone")
    ap.add_argument("--speed-sizes", default="tiny")
    ap.add_argument("--speed-images", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-pointing", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as tmp:
        folder = Path(tmp)
        report: dict[str, object] = {}
        if not args.skip_pointing:
            base = make_tiny_checkpoint(folder / "base", variant="ram_plus", seed=0, swin=SWIN_128)
            data, _ = write_dataset(folder / "train", args.train, seed=1)
            _, test = write_dataset(folder / "test", args.test, seed=2)
            start = time.perf_counter()
            result = finetune(FinetuneConfig(data=(str(data),), base=base.engine_config(precision="fp32"),
                                             output=str(folder / "run"), mode=args.mode, epochs=args.epochs, lr=args.lr,
                                             batch_size=8, val_split=0.2, num_workers=0, augment=False,
                                             device="cpu", precision="fp32"))
            trained = TaggingEngine.from_config(EngineConfig(checkpoint=str(result.checkpoint), device="cpu",
                                                             precision="fp32", batch_size=8, decode_workers=1))
            untrained = TaggingEngine.from_config(base.engine_config(precision="fp32", batch_size=8))
            report["finetune"] = {"mode": args.mode, "epochs": args.epochs, "lr": args.lr, "train_images": args.train,
                                  "seconds": round(time.perf_counter() - start, 1),
                                  "val_micro_f1_base": round(result.metrics["base"]["micro_f1"], 3),
                                  "val_micro_f1_new": round(result.metrics["new"]["micro_f1"], 3)}
            report["pointing_after_finetune"] = {k: round(v, 3) for k, v in pointing_game(trained, test).items()}
            report["pointing_before_finetune"] = {k: round(v, 3) for k, v in pointing_game(untrained, test).items()}
        report["speed"] = [speed(s, folder, args.speed_images, args.repeats, args.top_k)
                           for s in args.speed_sizes.split(",") if s]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
