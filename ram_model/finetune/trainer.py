"""`finetune(cfg)`: train, checkpoint every epoch, evaluate base and new side by side, write the run folder.

A run is resumable by construction: the data order and every augmentation are drawn
from generators seeded by (seed, epoch[, image]), and `checkpoints/last.pt` (written
atomically at the end of each epoch) holds the model, optimizer and scheduler. Re-running
the same command after a crash, even a `kill -9`, continues after the last finished epoch.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..inference.engine import resolve_device
from ..weights.model_files import LoadedModel, load_model
from ..model.ram import RAMTagger
from ..model.vocab import DEFAULT_THRESHOLD, TagVocabulary
from .config import FinetuneConfig, FinetuneError, FinetuneResult
from .data import Example, TaggingDataset, label_matrix, load_examples, split_examples
from .loss import asymmetric_loss
from .metrics import tagging_metrics
from .model_setup import (enable_gradient_checkpointing, grow_classes, trainable_parameter_groups,
                          training_autocast_dtype)
from .outputs import write_run_outputs

__all__ = ["finetune"]

TrainingEventFn = Callable[[dict[str, Any]], None]  # one event per step/epoch (a dict)
StopFn = Callable[[], bool]
_CHECKPOINT = "last.pt"
_FORMAT = 1


class _Log:
    """train_log.jsonl: one JSON object per line, flushed at once so a crash loses nothing logged."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: str, **fields: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, "time": round(time.time(), 3), **fields}) + "\n")


def _run_id(cfg: FinetuneConfig, base_version: str, digests: Sequence[str]) -> str:
    payload = json.dumps({"recipe": cfg.recipe(), "base": base_version, "data": list(digests)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _batch_targets(examples: Sequence[Example], indices: torch.Tensor, num_classes: int, negatives: str
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    rows = label_matrix([examples[int(i)] for i in indices], num_classes, negatives)
    return torch.from_numpy(rows == 1).float(), torch.from_numpy(rows >= 0).float()


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _loader(dataset: TaggingDataset, batch_size: int, num_workers: int, order: Sequence[int] | None = None
            ) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=order, shuffle=False, num_workers=num_workers,
                      drop_last=False)


def _predict(model: RAMTagger, dataset: TaggingDataset, cfg: FinetuneConfig, device: torch.device,
             amp: torch.dtype | None, progress: TrainingEventFn | None, label: str) -> np.ndarray:
    """(N, K) probabilities in the dataset's order."""
    model.eval()
    out = []
    steps = math.ceil(len(dataset) / cfg.batch_size)
    with torch.no_grad():
        for step, (images, _) in enumerate(_loader(dataset, cfg.batch_size, cfg.num_workers), 1):
            with _autocast(device, amp):
                logits = model(images.to(device))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
            if progress is not None:
                progress({"phase": "eval", "model": label, "step": step, "steps": steps})
    return np.concatenate(out).astype(np.float32)


def _cosine(total_steps: int, min_ratio: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    return factor


def _check_new_classes(cfg: FinetuneConfig, vocab: TagVocabulary) -> None:
    clash = [n for n in cfg.new_classes if n in vocab.names]
    if clash:
        raise FinetuneError(f"new classes {clash} are already in the vocabulary; their ids are "
                            f"{[vocab.index_of(n) for n in clash]}")


def finetune(cfg: FinetuneConfig, progress: TrainingEventFn | None = None,
             should_stop: StopFn | None = None) -> FinetuneResult:
    """Run (or resume) the fine-tuning `cfg` describes; see docs/finetune.md."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    if (out / "card.json").is_file() and (out / "model.safetensors").is_file():
        raise FinetuneError(f"{out} already holds a finished run (card.json, model.safetensors); "
                            "choose a new --output")
    log = _Log(out / "train_log.jsonl")

    base = load_model(cfg.base)
    base_version = base.model_version
    _check_new_classes(cfg, base.vocab)
    old_k = len(base.vocab)
    num_classes = old_k + len(cfg.new_classes)
    names = list(base.vocab.names) + list(cfg.new_classes)
    examples, files = load_examples(cfg.data, num_classes=num_classes, image_root=cfg.image_root)
    train_idx, val_idx = split_examples(examples, cfg.val_split, cfg.seed)
    run_id = _run_id(cfg, base_version, [f.sha256 for f in files])

    device = resolve_device(cfg.device)
    amp = training_autocast_dtype(cfg.precision, device)
    image_size = base.swin.image_res
    val_set = TaggingDataset(examples, val_idx, image_size, augment=False, seed=cfg.seed)
    val_labels = label_matrix([examples[i] for i in val_idx], num_classes, cfg.negatives)

    ckpt_path = ckpt_dir / _CHECKPOINT
    state: dict[str, Any] | None = None
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state.get("run_id") != run_id:
            raise FinetuneError(f"{out} holds a partial run with other settings, data or base model "
                                f"(run {state.get('run_id')} vs {run_id}); resume it with the same command, "
                                "or choose a new --output")

    # The base model's validation scores, once (kept in the checkpoint so a resume skips them).
    if state is not None:
        base_probs = state["base_probs"]
    else:
        base.model.to(device)
        base_probs = _predict(base.model, val_set, cfg, device, amp, progress, "base")
        base_probs = np.concatenate([base_probs, np.zeros((len(val_idx), len(cfg.new_classes)), np.float32)], 1)

    model = grow_classes(base.model.cpu(), len(cfg.new_classes), seed=cfg.seed)
    groups = trainable_parameter_groups(model, mode=cfg.mode, unfreeze_stages=cfg.unfreeze_stages,
                                        old_classes=old_k, weight_decay=cfg.weight_decay,
                                        lr=cfg.learning_rate, new_class_lr_scale=cfg.new_class_lr_scale)
    if cfg.grad_checkpointing:
        enable_gradient_checkpointing(model)
    model.to(device)
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    updates_per_epoch = math.ceil(steps_per_epoch / cfg.grad_accum)
    total_updates = updates_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _cosine(total_updates, cfg.min_lr / cfg.learning_rate))
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"] + 1
        log.write("resume", from_epoch=start_epoch + 1, run_id=run_id)
    else:
        log.write("start", run_id=run_id, train=len(train_idx), val=len(val_idx), device=str(device),
                  precision=str(amp or torch.float32).replace("torch.", ""), recipe=cfg.recipe())
    trainable = sum(p.numel() for g in groups for p in g["params"])

    train_set = TaggingDataset(examples, train_idx, image_size, augment=cfg.augment, seed=cfg.seed)
    started, done_steps = time.monotonic(), 0
    remaining_steps = steps_per_epoch * (cfg.epochs - start_epoch)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        train_set.epoch = epoch
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        losses = []
        optimizer.zero_grad(set_to_none=True)
        loader = _loader(train_set, cfg.batch_size, cfg.num_workers, order.tolist())
        for step, (images, indices) in enumerate(loader, 1):
            if should_stop is not None and should_stop():
                log.write("stopped", epoch=epoch + 1, step=step)
                kept = f"{ckpt_path} holds epoch {epoch}" if ckpt_path.is_file() else "no epoch had finished"
                raise FinetuneError(f"stopped during epoch {epoch + 1}; {kept}. Re-run the same command to resume.")
            targets, known = _batch_targets(examples, indices, num_classes, cfg.negatives)
            with _autocast(device, amp):
                logits = model(images.to(device, non_blocking=True))
            loss = asymmetric_loss(logits, targets.to(device), known.to(device), gamma_neg=cfg.negative_focusing)
            (loss / cfg.grad_accum).backward()
            if step % cfg.grad_accum == 0 or step == steps_per_epoch:
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            done_steps += 1
            eta = (time.monotonic() - started) / done_steps * (remaining_steps - done_steps)
            event = {"phase": "train", "epoch": epoch + 1, "epochs": cfg.epochs, "step": step,
                     "steps": steps_per_epoch, "loss": losses[-1], "eta_s": round(eta, 1)}
            log.write("step", **{k: v for k, v in event.items() if k != "phase"}, lr=scheduler.get_last_lr()[0])
            if progress is not None:
                progress(event)
        _atomic_torch_save({"format": _FORMAT, "run_id": run_id, "epoch": epoch, "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "torch_rng": torch.get_rng_state(), "base_probs": base_probs}, ckpt_path)
        log.write("epoch", epoch=epoch + 1, epochs=cfg.epochs, mean_loss=float(np.mean(losses)),
                  checkpoint=str(ckpt_path))

    new_probs = _predict(model, val_set, cfg, device, amp, progress, "new")
    prior = np.concatenate([base.vocab.thresholds, np.full(len(cfg.new_classes), DEFAULT_THRESHOLD, np.float32)])
    from ..review import tune_thresholds

    tuned = tune_thresholds(val_labels.astype(np.int64), new_probs, prior=prior)
    thresholds = np.asarray(tuned.thresholds, dtype=np.float32)
    metrics = {
        "split": {"train": len(train_idx), "val": len(val_idx), "negatives": cfg.negatives},
        "base": tagging_metrics(val_labels, base_probs, prior, names),
        "new": tagging_metrics(val_labels, new_probs, thresholds, names),
    }
    vocab = TagVocabulary(tuple(names), tuple(base.vocab.names_zh) + tuple(cfg.new_classes), thresholds)
    trained = LoadedModel(model.cpu().eval(), vocab, base.swin, base.head, base.variant, base.path,
                          base.report, base.random_weights, base.fingerprint, base.generation + 1)
    card = {
        "format": "ram-annotate-finetune/1",
        "run_id": run_id,
        "base_model_version": base_version,
        "base_checkpoint": cfg.base.checkpoint,
        "data": [{"path": str(f.path), "sha256": f.sha256, "entries": f.entries} for f in files],
        "recipe": cfg.recipe(),
        "seed": cfg.seed,
        "new_classes": list(cfg.new_classes),
        "trainable_parameters": trainable,
        "device": str(device),
        "precision": str(amp or torch.float32).replace("torch.", ""),
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result = write_run_outputs(out, trained, tuned=tuned, metrics=metrics, card=card,
                               official_layout=cfg.official_layout)
    log.write("done", model_version=result.model_version, micro_f1_base=metrics["base"]["micro_f1"],
              micro_f1_new=metrics["new"]["micro_f1"])
    ckpt_path.unlink(missing_ok=True)
    result.log = out / "train_log.jsonl"
    return result


def _stderr(message: str) -> None:  # pragma: no cover - a debugging aid
    print(message, file=sys.stderr)


_ = replace
