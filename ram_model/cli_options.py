"""The model options every command shares (`tag`, `serve`, `fiftyone ...`, `info`), defined once."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .config import PRESETS, EngineConfig
from .errors import ConfigError
from .thresholds import ThresholdPolicy

__all__ = [
    "add_model_options",
    "engine_config_from_args",
    "threshold_policy_from_args",
    "DEFAULT_CHECKPOINT",
    "ENGINE_OPTION_NAMES",
    "THRESHOLD_OPTION_NAMES",
]

DEFAULT_CHECKPOINT = "ram_plus_swin_large_14m"
# The argparse destinations `add_model_options` creates, for callers that carry the same
# options in other forms (server settings, plugin params).
ENGINE_OPTION_NAMES = ("checkpoint", "swin_config", "head_config", "tag_list", "tag_list_zh", "thresholds",
                       "device", "precision", "batch_size", "no_exif_transpose", "trust_pickle")
THRESHOLD_OPTION_NAMES = ("threshold", "tag_threshold", "top_k")


def add_model_options(parser: argparse.ArgumentParser, *, thresholds: bool = True) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"local .pth/.safetensors, a preset ({', '.join(PRESETS)}) or hf://owner/repo/file "
                        f"(default: {DEFAULT_CHECKPOINT})")
    g.add_argument("--swin-config", help="Swin JSON (default: the checkpoint's own, else Swin-L 384)")
    g.add_argument("--head-config", help="tagging-head JSON, q2l_config.json format")
    g.add_argument("--tag-list", help="English tag list, one per line (default: the official 4,585 tags)")
    g.add_argument("--tag-list-zh", help="Chinese tag list aligned with --tag-list")
    g.add_argument("--thresholds", help="class-threshold file, one per line")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    g.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="autocast precision (auto: fp16 on CUDA, fp32 on CPU)")
    g.add_argument("--batch-size", type=int, help="images per forward pass (default: 1 on CPU, 32 on GPU)")
    g.add_argument("--no-exif-transpose", action="store_true",
                   help="ignore EXIF orientation (exact parity with the official pipeline)")
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow checkpoints that contain pickled Python objects (only for files you trust)")
    if thresholds:
        t = parser.add_argument_group("thresholds")
        t.add_argument("--threshold", type=float, help="one threshold for every tag (overrides the class file)")
        t.add_argument("--tag-threshold", action="append", default=[], metavar="TAG=VALUE",
                       help="per-tag threshold override; repeatable, or a JSON file {tag: value}")
        t.add_argument("--top-k", type=int, help="keep at most k fired tags per image")


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        checkpoint=args.checkpoint, swin_config=args.swin_config, head_config=args.head_config,
        tag_list=args.tag_list, tag_list_zh=args.tag_list_zh, thresholds=args.thresholds,
        device=args.device, precision=args.precision, batch_size=args.batch_size,
        exif_transpose=not args.no_exif_transpose, trust_pickle=args.trust_pickle,
    )


def _per_tag(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        if "=" not in item and Path(item).is_file():
            data = json.loads(Path(item).read_text(encoding="utf-8"))
            out.update({str(k): float(v) for k, v in data.items()})
            continue
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise ConfigError(f"--tag-threshold expects TAG=VALUE or a JSON file, got {item!r}")
        try:
            out[name] = float(value)
        except ValueError as e:
            raise ConfigError(f"--tag-threshold {item!r}: {value!r} is not a number") from e
    return out


def threshold_policy_from_args(args: argparse.Namespace) -> ThresholdPolicy:
    return ThresholdPolicy(threshold=getattr(args, "threshold", None),
                           per_tag=_per_tag(getattr(args, "tag_threshold", []) or []) or None,
                           top_k=getattr(args, "top_k", None))
