"""What the engine speed benchmarks (bench_engine.py, bench_gpu.py) share: models, configs, timing, tables.

The engine gains features over time (precision, compile, classes, decode_workers,
gpu_decode, predict_iter: docs/seams.md, "Engine speed"); every measurement asks
`engine_lacks(...)` first and prints "n/a (engine lacks X)" instead of failing, so the
scripts run on any version of the engine.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ram_model import EngineConfig, TaggingEngine
from ram_model.model.config import HeadConfig, SwinConfig, packaged_file
from ram_model.inference.images import load_image
from ram_model.model.preprocess import to_model_input
from ram_model.weights.testing import TinyModelFiles, make_tiny_checkpoint
from ram_model.model.vocab import read_lines

__all__ = [
    "PROJECT_CLASSES_50", "build_checkpoint", "decode_workers", "default_config", "engine_lacks", "engine_dtype",
    "model_only_inputs", "model_only_step", "project_classes", "synchronize", "timed", "Results", "na",
]

# 50 common, concrete tags: a typical project's label set (all in RAM's 4,585-tag vocabulary).
PROJECT_CLASSES_50 = (
    "dog", "cat", "car", "person", "tree", "sky", "building", "bicycle", "bird", "boat",
    "flower", "grass", "horse", "table", "chair", "cup", "bottle", "laptop", "book", "clock",
    "beach", "mountain", "road", "window", "water", "food", "pizza", "apple", "banana", "train",
    "bus", "truck", "kite", "umbrella", "bench", "sheep", "cow", "elephant", "cloud", "snow",
    "river", "bridge", "city", "street sign", "sunset", "flag", "shoe", "hat", "motorcycle", "plane",
)


def build_checkpoint(size: str, directory: Path) -> TinyModelFiles:
    """tiny: the test architecture (48 tags); full: RAM++ Swin-L @ 384, all 4,585 tags, random weights (~1.3 GB)."""
    if size == "tiny":
        return make_tiny_checkpoint(directory, variant="ram_plus")
    if size != "full":
        raise ValueError(f"size must be tiny or full, not {size!r}")
    names = tuple(n for n in read_lines(packaged_file("ram_tag_list.txt")) if n)
    swin = SwinConfig.from_file(packaged_file("swin/config_swinL_384.json"))
    head = HeadConfig.from_file(packaged_file("q2l_config.json"))
    return make_tiny_checkpoint(directory, variant="ram_plus", tags=names, swin=swin, head=head)


def project_classes(files: TinyModelFiles, count: int = 50) -> tuple[str, ...]:
    """`count` real tag names the checkpoint knows: the 50-class project (the tiny model has only 48 tags)."""
    known = set(read_lines(files.tag_list))
    chosen = [n for n in PROJECT_CLASSES_50 if n in known]
    return tuple(chosen[:count])


def _fields() -> set[str]:
    return {f.name for f in dataclasses.fields(EngineConfig)}


def engine_lacks(*features: str) -> str | None:
    """None when the engine has every feature, else 'engine lacks X' for the first missing one.

    A feature is an EngineConfig field (precision values are checked by building a config)
    or a TaggingEngine attribute such as predict_iter or restricted.
    """
    for feature in features:
        if feature.startswith("precision="):
            try:
                EngineConfig(checkpoint="x", precision=feature.split("=", 1)[1])  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - any refusal means the value is not supported
                return f"engine lacks {feature}"
        elif feature not in _fields() and not hasattr(TaggingEngine, feature):
            return f"engine lacks {feature}"
    return None


def na(reason: str) -> str:
    return f"n/a ({reason})"


def default_config(files: TinyModelFiles, device: str, **overrides: Any) -> EngineConfig:
    """The engine's own defaults (batch size, decode workers, precision...), only the files and device set.

    Unlike `TinyModelFiles.engine_config`, which pins batch 4 and one decode worker for tests.
    Overrides naming a field the engine lacks are a ValueError: callers check `engine_lacks` first.
    """
    missing = sorted(set(overrides) - _fields())
    if missing:
        raise ValueError(f"engine lacks {', '.join(missing)}")
    return EngineConfig(
        checkpoint=str(files.checkpoint), swin_config=str(files.swin_config), head_config=str(files.head_config),
        tag_list=str(files.tag_list), tag_list_zh=str(files.tag_list_zh), thresholds=str(files.thresholds),
        device=device, **overrides)


def decode_workers(engine: TaggingEngine) -> int | str:
    """The engine's decode worker count, resolved when the config leaves it to the core count."""
    workers = engine.config.decode_workers
    if workers is not None:
        return workers
    try:
        from ram_model.inference.pipeline import default_decode_workers
    except ImportError:
        return "default"
    return default_decode_workers()


def engine_dtype(engine: TaggingEngine) -> torch.dtype:
    """The dtype the engine computes in: its weights' dtype when cast at load, else its autocast dtype."""
    weights = next(engine.model.parameters()).dtype
    if weights != torch.float32:
        return weights
    autocast = getattr(engine, "_autocast", None)
    if isinstance(autocast, torch.dtype):
        return autocast
    name = str(engine.info().get("precision", "float32"))
    return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
            "fp16": torch.float16}.get(name, torch.float32)


def model_only_inputs(paths: Iterable[Path], size: int) -> list[torch.Tensor]:
    """Pre-made normalised [3, S, S] inputs, decoded and resized once: model-only timings exclude decoding."""
    return [to_model_input(load_image(p, exif_transpose=False), size) for p in paths]


def model_only_step(engine: TaggingEngine, dtype: torch.dtype | None = None) -> Callable[[torch.Tensor], np.ndarray]:
    """A function running the engine's eager model on a ready batch: forward + sigmoid + copy to the host.

    It computes in `dtype` (default: the engine's), autocast when the weights are fp32 and
    dtype is not, so "model-only" is the same arithmetic as the engine, without its
    decoding, batching and threads.
    """
    dtype = dtype or engine_dtype(engine)
    weights = next(engine.model.parameters()).dtype
    device = engine.device

    def step(batch: torch.Tensor) -> np.ndarray:
        autocast = (torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            logits = engine.model(batch.to(device, dtype=weights, non_blocking=True))
            return torch.sigmoid(logits.float()).cpu().numpy()

    return step


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeats: int, device: torch.device | str = "cpu") -> tuple[float, Any]:
    """(best wall time of `repeats` calls, the last call's result): best-of-N damps a shared machine's noise."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, result


class Results:
    """Rows of a results table, printed at the end and (optionally) written as JSON after every row.

    Writing as it goes means a run stopped by a time limit still leaves what it measured.
    """

    def __init__(self, json_path: str | os.PathLike[str] | None = None, meta: dict[str, Any] | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.json_path = Path(json_path) if json_path else None
        self.meta = meta or {}

    def add(self, **row: Any) -> dict[str, Any]:
        self.rows.append(row)
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
        print("  " + "  ".join(f"{k}={v}" for k, v in shown.items()), flush=True)
        self.save()
        return row

    def save(self) -> None:
        if self.json_path is None:
            return
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": self.meta, "rows": self.rows}, indent=1, default=str))
        tmp.replace(self.json_path)

    def table(self, columns: list[tuple[str, str, str]], title: str, where: Callable[[dict], bool] = lambda r: True
              ) -> str:
        """columns: (key, header, format) -> a fixed-width table of the matching rows."""
        rows = [r for r in self.rows if where(r)]
        cells = [[h for _, h, _ in columns]]
        for r in rows:
            line = []
            for key, _, fmt in columns:
                value = r.get(key)
                line.append("" if value is None else (format(value, fmt) if isinstance(value, (int, float))
                                                      and fmt else str(value)))
            cells.append(line)
        widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
        lines = [title]
        for n, line in enumerate(cells):
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)
