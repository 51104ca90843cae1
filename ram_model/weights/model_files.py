"""Assembling a ready model from an `EngineConfig`: resolve, read, configure, build, load.

Kept apart from the engine so that `ram-annotate info` and `convert` build exactly the
model the engine would, without starting an inference pipeline.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar


from .checkpoint import LoadReport, detect_variant, load_into, read_checkpoint
from ..model.config import EngineConfig, HeadConfig, SwinConfig, packaged_file
from ..errors import ConfigError
from .hub import resolve_checkpoint
from .versions import compose_model_version, finetune_generation
from ..model.ram import RAMTagger
from ..model.vocab import TagVocabulary, read_thresholds

__all__ = ["LoadedModel", "load_model", "file_fingerprint"]

_DEFAULT_SWIN = "swin/config_swinL_384.json"
_DEFAULT_HEAD = "q2l_config.json"
_Config = TypeVar("_Config", SwinConfig, HeadConfig)


@dataclass
class LoadedModel:
    model: RAMTagger
    vocab: TagVocabulary
    swin: SwinConfig
    head: HeadConfig
    variant: str
    path: Path
    report: LoadReport
    random_weights: bool
    fingerprint: str
    generation: int = 0  # fine-tunes between the base checkpoint and these weights (0: the base itself)

    @property
    def model_version(self) -> str:
        """Changes with the checkpoint's content, the vocabulary and the thresholds; reads
        `ft<N>-` first for a fine-tune (`versions.py` says why)."""
        return compose_model_version(self.variant, self.fingerprint, self.vocab.digest,
                                     random_weights=self.random_weights, generation=self.generation)


def file_fingerprint(path: Path, chunk: int = 1 << 20) -> str:
    """Cheap content fingerprint: size plus the first and last MiB (hashing 3 GB at start-up is slow)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(size - chunk, chunk))
            h.update(f.read(chunk))
    return h.hexdigest()[:10]


def _architecture(kind: type[_Config], key: str, user_file: str | None, meta: dict[str, Any],
                  preset_file: str | None, default_file: str) -> _Config:
    """The Swin or head config, the first found of: the user's file (the flag), the checkpoint's own
    metadata, the preset's packaged file, the packaged default (official checkpoints carry none)."""
    if user_file:
        return kind.from_file(user_file)
    if key in meta:
        return kind.from_dict(meta[key], source="checkpoint metadata")
    return kind.from_file(packaged_file(preset_file or default_file))


def _vocabulary(cfg: EngineConfig, meta: dict[str, Any]) -> TagVocabulary:
    stored = meta.get("vocabulary")
    if stored and not (cfg.tag_list or cfg.tag_list_zh):
        vocab = TagVocabulary.from_dict(stored, source="the checkpoint's vocabulary")
        if cfg.thresholds:
            vocab = TagVocabulary(vocab.names, vocab.names_zh, read_thresholds(cfg.thresholds, len(vocab)))
        return vocab
    return TagVocabulary.from_files(cfg.tag_list, cfg.tag_list_zh, cfg.thresholds)


def load_model(cfg: EngineConfig) -> LoadedModel:
    """Build the model the config describes and load its checkpoint strictly (CPU, fp32, eval mode)."""
    resolved = resolve_checkpoint(cfg.checkpoint, cache_dir=cfg.cache_dir)
    ckpt = read_checkpoint(resolved.path, trust_pickle=cfg.trust_pickle)
    preset = resolved.preset
    swin = _architecture(SwinConfig, "swin_config", cfg.swin_config, ckpt.metadata,
                         preset.swin_config if preset else None, _DEFAULT_SWIN)
    head = _architecture(HeadConfig, "head_config", cfg.head_config, ckpt.metadata,
                         preset.head_config if preset else None, _DEFAULT_HEAD)
    vocab = _vocabulary(cfg, ckpt.metadata)
    variant = cfg.variant or ckpt.metadata.get("variant") or (preset.variant if preset else None)
    variant = variant or detect_variant(ckpt.state_dict, len(vocab))
    if variant not in ("ram", "ram_plus"):
        raise ConfigError(f"unknown variant {variant!r}")
    model = RAMTagger(swin, head, len(vocab), variant)  # type: ignore[arg-type]
    report = load_into(model, {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()})
    report.ignored_top_level = ckpt.ignored_top_level
    model.eval()
    return LoadedModel(model, vocab, swin, head, variant, resolved.path, report,
                       ckpt.random_weights, file_fingerprint(resolved.path), finetune_generation(ckpt.metadata))
