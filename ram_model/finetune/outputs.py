"""The run folder: model.safetensors (self-contained), thresholds.txt, metrics.json, card.json[, model.pth]."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..weights.checkpoint import RANDOM_WEIGHTS_MARKER
from ..weights.convert import convert_checkpoint
from ..weights.model_files import LoadedModel, file_fingerprint
from ..review.atomic_io import atomic_write_json
from .config import FinetuneResult

__all__ = ["write_run_outputs", "MODEL_FILE", "THRESHOLDS_FILE", "METRICS_FILE", "CARD_FILE", "OFFICIAL_FILE"]

MODEL_FILE = "model.safetensors"
THRESHOLDS_FILE = "thresholds.txt"
METRICS_FILE = "metrics.json"
CARD_FILE = "card.json"
OFFICIAL_FILE = "model.pth"


def write_run_outputs(out: Path, trained: LoadedModel, *, tuned: Any, metrics: dict[str, Any],
                      card: dict[str, Any], official_layout: bool) -> FinetuneResult:
    """Write every output; card.json goes last, so its presence marks a finished run.

    Weights are stored in fp32: fine-tuning steps are often below fp16's resolution of the
    weights they change, and a half-precision copy would silently undo part of the run.
    """
    thresholds_path = out / THRESHOLDS_FILE
    tuned.write(thresholds_path, names=list(trained.vocab.names))
    model_path = convert_checkpoint(trained, out / MODEL_FILE, dtype="fp32", metadata={
        "source_model_version": card["base_model_version"],
        "finetune": {"run_id": card["run_id"], "new_classes": card["new_classes"], "recipe": card["recipe"],
                     "generation": trained.generation},
    })
    model_version = replace(trained, path=model_path, fingerprint=file_fingerprint(model_path)).model_version
    official = None
    if official_layout:
        # The official code builds exactly 4,585 classes: a file with new classes only loads here.
        official = out / OFFICIAL_FILE
        payload: dict[str, Any] = {"model": {k: v.detach().clone() for k, v in trained.model.state_dict().items()}}
        if trained.random_weights:
            payload[RANDOM_WEIGHTS_MARKER] = True
        torch.save(payload, official)
    card = {**card, "model_version": model_version, "files": {
        "model": MODEL_FILE, "thresholds": THRESHOLDS_FILE, "metrics": METRICS_FILE,
        **({"official": OFFICIAL_FILE} if official else {})}}
    atomic_write_json(out / METRICS_FILE, metrics)
    atomic_write_json(out / CARD_FILE, card)
    return FinetuneResult(out, model_path, thresholds_path, metrics, model_version, card, official)
