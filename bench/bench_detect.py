"""Cost of grounded detection (+ SAM masks) against plain RAM tagging, same images, same run (CPU, fp32).

    PYTHONPATH=. .venv/bin/python bench/bench_detect.py                    # tiny models (~1 min)
    PYTHONPATH=. .venv/bin/python bench/bench_detect.py --size full --images 2
    PYTHONPATH=. .venv/bin/python bench/bench_detect.py --size full --ram tiny --images 1   # detector/SAM cost only

tiny: RAM++ test architecture + the random:tiny Grounding DINO and SAM (what the tests run).
full: real architectures with random weights: RAM++ Swin-L @ 384 (all 4,585 tags),
Grounding DINO at grounding-dino-tiny's size (Swin-T + BERT-base, 900 queries, 800 px short
side) and SAM ViT-B at 1024 px: the costs a user meets, since random weights cost the same
as trained ones. RAM's tags are forced (every tag's threshold set so `--fire` tags fire),
so each image prompts the same number of phrases. Prints seconds per image and the ratio
of each pipeline to tagging alone.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from natural_images import write_jpegs  # noqa: E402
from speed_common import build_checkpoint  # noqa: E402

from ram_model import TaggingEngine, ThresholdPolicy  # noqa: E402
from ram_model.grounding import GroundedLabeler  # noqa: E402
from ram_model.grounding.detectors import GroundingDinoDetector  # noqa: E402
from ram_model.grounding.segmenter import SamSegmenter  # noqa: E402
from ram_model.grounding.tiny import tiny_grounding_dino, tiny_sam, tiny_tokenizer  # noqa: E402


def full_grounding_dino(words):
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil)

    tokenizer = tiny_tokenizer(words, bos="[CLS]", eos="[SEP]")
    config = GroundingDinoConfig(text_config=BertConfig(), use_timm_backbone=False, use_pretrained_backbone=False)
    return GroundingDinoForObjectDetection(config).eval(), tokenizer, GroundingDinoImageProcessorPil()


def full_sam():
    from transformers import SamConfig, SamModel
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    return SamModel(SamConfig()).eval(), SamImageProcessorPil()


def _time(fn, repeat: int = 2) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--ram", choices=["tiny", "full"], default=None,
                    help="RAM's size when it should differ from --size (full RAM++ takes minutes to build)")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--fire", type=int, default=8, help="tags fired per image (phrases prompted)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        files = build_checkpoint(args.ram or args.size, Path(tmp) / "ckpt")
        engine = TaggingEngine.from_config(files.engine_config(precision="fp32", device="cpu"))
        paths = write_jpegs(Path(tmp) / "img", args.images, (640, 480))
        # Fire the same `--fire` tags on every image: threshold 0 for them, 1 for the rest.
        fired = engine.vocab.names[: args.fire]
        policy = ThresholdPolicy(threshold=1.0, per_tag={n: 0.0 for n in fired})
        device = torch.device("cpu")
        if args.size == "tiny":
            gd, sam = tiny_grounding_dino(engine.vocab.names), tiny_sam()
        else:
            gd, sam = full_grounding_dino(engine.vocab.names), full_sam()
        detector = GroundingDinoDetector(*gd, version="bench", random_weights=True, device=device,
                                         box_threshold=0.0, text_threshold=0.0)
        segmenter = SamSegmenter(*sam, version="bench", random_weights=True, device=device)
        labeler = GroundedLabeler(engine, detector, segmenter, policy)
        counts: list[int] = []

        def tag() -> None:
            engine.predict(paths)

        def detect() -> None:
            counts[:] = [len(r.detections) for r in labeler.run(paths, segment=False)]

        def detect_segment() -> None:
            list(labeler.run(paths, segment=True))

        t_tag, t_det, t_seg = _time(tag), _time(detect), _time(detect_segment)
        n = len(paths)
        out = {"size": args.size, "ram": args.ram or args.size, "images": n, "fired_tags": args.fire, "threads": torch.get_num_threads(),
               "boxes_per_image": sum(counts) / n,
               "s_per_image": {"tag": round(t_tag / n, 4), "tag+detect": round(t_det / n, 4),
                               "tag+detect+sam": round(t_seg / n, 4)},
               "ratio_to_tag": {"tag+detect": round(t_det / t_tag, 2), "tag+detect+sam": round(t_seg / t_tag, 2)}}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
