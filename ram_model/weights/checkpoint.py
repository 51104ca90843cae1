"""Reading checkpoints in the official layout (and our converted files) into `RAMTagger`.

Loading is strict on the tagging path. The filter is a sequence of small pure steps
(unwrap, rename, classify) so that each rule is testable on its own and the final
`load_state_dict` can run with `strict=True`:

* weights may sit under `'model'` / `'state_dict'` or bare;
* legacy prefix `vision_multi.` means `tagging_head.`, and DDP's `module.` is dropped;
* training-only modules (`tag_encoder.*`, `text_decoder.*` in RAM) and recomputable
  buffers (`relative_position_index`, `attn_mask`, `position_ids`) are skipped and reported;
* anything else that does not match the model, by name or by shape, is an error naming the key.
"""
from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..errors import CheckpointMismatchError, CheckpointNotFoundError

__all__ = [
    "LoadReport",
    "CheckpointFile",
    "read_checkpoint",
    "unwrap_state_dict",
    "rename_legacy_keys",
    "classify_keys",
    "load_into",
    "detect_variant",
    "TRAINING_ONLY_PREFIXES",
    "BUFFER_SUFFIXES",
    "RANDOM_WEIGHTS_MARKER",
]

TRAINING_ONLY_PREFIXES = ("tag_encoder.", "text_decoder.")
BUFFER_SUFFIXES = ("relative_position_index", "attn_mask", "position_ids")
KEY_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^module\.", ""),
    (r"^vision_multi\.", "tagging_head."),
)
# Checkpoints written by ram_model.weights.testing carry this top-level flag so that no tool
# ever presents tags from random weights as if they meant something.
RANDOM_WEIGHTS_MARKER = "ram_annotate_random_weights"
_WRAPPER_KEYS = ("model", "state_dict")


@dataclass
class LoadReport:
    """What happened to every key of a checkpoint."""

    loaded: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    skipped_training_only: list[str] = field(default_factory=list)
    skipped_buffers: list[str] = field(default_factory=list)
    ignored_top_level: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "loaded": len(self.loaded),
            "renamed": len(self.renamed),
            "skipped_training_only": len(self.skipped_training_only),
            "skipped_buffers": len(self.skipped_buffers),
            "ignored_top_level": self.ignored_top_level,
        }


@dataclass
class CheckpointFile:
    """A checkpoint read from disk: the (still unfiltered) weights plus what we know of it."""

    state_dict: dict[str, Tensor]
    metadata: dict[str, Any]
    ignored_top_level: list[str]
    random_weights: bool


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    from safetensors import safe_open

    tensors: dict[str, Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as e:  # noqa: BLE001 - a truncated or damaged file fails in the Rust reader in many ways
        raise CheckpointMismatchError(f"{path} is not a readable safetensors file (truncated or damaged?): {e}") from e
    meta: dict[str, Any] = {}
    for key, value in raw_meta.items():
        try:
            meta[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            meta[key] = value
    return tensors, meta


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):  # old (non-zip) serialisation cannot be memory-mapped
            raise
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust_pickle:
            raise CheckpointMismatchError(
                f"{path} holds Python objects beyond tensors, and loading it would run arbitrary "
                "pickled code. If you trust the file, pass trust_pickle=True (CLI: --trust-pickle), "
                f"or convert it once with `ram-annotate convert`. Details: {e}"
            ) from e
        return torch.load(path, map_location="cpu", weights_only=False)


def read_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> CheckpointFile:
    """Read a `.pth`/`.pt` (official layout) or `.safetensors` (converted) checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        tensors, meta = _read_safetensors(path)
        return CheckpointFile(tensors, meta, [], bool(meta.get(RANDOM_WEIGHTS_MARKER, False)))
    try:
        obj = _torch_load(path, trust_pickle)
    except CheckpointMismatchError:
        raise
    except Exception as e:  # torch.load fails in many ways on a damaged file
        raise CheckpointMismatchError(f"{path} is not a readable PyTorch checkpoint: {e}") from e
    state_dict, ignored = unwrap_state_dict(obj)
    random = bool(isinstance(obj, Mapping) and obj.get(RANDOM_WEIGHTS_MARKER, False))
    return CheckpointFile(state_dict, {}, ignored, random)


def unwrap_state_dict(obj: Any) -> tuple[dict[str, Tensor], list[str]]:
    """Find the tensor mapping inside a checkpoint object; report the top-level keys left aside."""
    if not isinstance(obj, Mapping):
        raise CheckpointMismatchError(f"checkpoint holds a {type(obj).__name__}, not a mapping of weights")
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            return dict(inner), sorted(str(k) for k in obj if k != key)
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointMismatchError("checkpoint has no 'model' entry and no tensors at its top level")
    return tensors, sorted(str(k) for k in obj if k not in tensors)


def rename_legacy_keys(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[tuple[str, str]]]:
    """Apply `KEY_RENAMES`; returns the new mapping and the (old, new) pairs that changed."""
    out: dict[str, Tensor] = {}
    renamed: list[tuple[str, str]] = []
    for key, value in state_dict.items():
        new = key
        for pattern, repl in KEY_RENAMES:
            new = re.sub(pattern, repl, new)
        if new != key:
            renamed.append((key, new))
        out[new] = value
    return out, renamed


def _is_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in BUFFER_SUFFIXES


def classify_keys(state_dict: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], LoadReport]:
    """Split checkpoint keys into loadable, skipped (training-only, buffers) and errors.

    Raises `CheckpointMismatchError` naming every missing, unexpected or mis-shaped key.
    """
    report = LoadReport()
    usable: dict[str, Tensor] = {}
    unexpected: list[str] = []
    mis_shaped: list[str] = []
    for key, value in state_dict.items():
        if key in expected:
            want = tuple(expected[key].shape)
            if tuple(value.shape) != want:
                mis_shaped.append(f"{key}: checkpoint {tuple(value.shape)} vs model {want}")
            else:
                usable[key] = value
        elif key.startswith(TRAINING_ONLY_PREFIXES):
            report.skipped_training_only.append(key)
        elif _is_buffer(key):
            report.skipped_buffers.append(key)
        else:
            unexpected.append(key)
    missing = [k for k in expected if k not in state_dict]
    problems = []
    if mis_shaped:
        problems.append("shape mismatch: " + "; ".join(mis_shaped[:20]))
    if missing:
        problems.append(f"missing keys ({len(missing)}): " + ", ".join(missing[:20]))
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(unexpected[:20]))
    if problems:
        raise CheckpointMismatchError(
            "checkpoint does not fit the model built from the configs ("
            + " | ".join(problems)
            + "). Check --swin-config / --head-config / the tag list against the checkpoint."
        )
    report.loaded = sorted(usable)
    return usable, report


def load_into(model: nn.Module, state_dict: Mapping[str, Tensor]) -> LoadReport:
    """Rename, classify and strictly load `state_dict` into `model`."""
    renamed_sd, renamed = rename_legacy_keys(state_dict)
    usable, report = classify_keys(renamed_sd, model.state_dict())
    report.renamed = renamed
    model.load_state_dict(usable, strict=True, assign=False)
    return report


def detect_variant(state_dict: Mapping[str, Tensor], num_classes: int) -> str:
    """'ram_plus' when the checkpoint has the RAM++ reweighting, else 'ram'."""
    if "reweight_scale" in state_dict:
        return "ram_plus"
    embed = state_dict.get("label_embed")
    if embed is not None and num_classes and embed.shape[0] == num_classes * 51:
        return "ram_plus"
    return "ram"
