"""A folder of fine-tuned models: `<root>/<name>/<version>/` plus an `ACTIVE` pointer per name.

A version is named by the digest of its weights, vocabulary and thresholds, so the same
content always gets the same version (registering twice is harmless) and any change
gives a new one: integrations compare `model_version`s and re-predict when it moves.
Promotion is guarded by the validation micro-F1 each fine-tuning run measured; a
history file keeps every activation, so `rollback` can undo the last one.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import CheckpointNotFoundError, RamModelError
from ..review.atomic_io import atomic_write_json, atomic_write_text

__all__ = ["ModelRegistry", "ModelVersion", "PromotionResult", "RegistryError", "resolve_registry_uri",
           "REGISTRY_SCHEME", "MIN_VAL_IMAGES", "validation_images"]

# Fewer held-out images than this say nothing about a fine-tune (one image gives micro-F1
# 0 or 1): the server's and the App's jobs register such a version without promoting it.
MIN_VAL_IMAGES = 20

REGISTRY_SCHEME = "registry://"
_REQUIRED = ("model.safetensors", "thresholds.txt", "metrics.json", "card.json")
_OPTIONAL = ("thresholds.txt.report.json", "train_log.jsonl", "model.pth")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ACTIVE, _HISTORY, _INFO, _LOCK = "ACTIVE", "history.json", "version.json", ".lock"


class RegistryError(RamModelError):
    """A registry operation that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: Path
    checkpoint: Path
    thresholds: Path
    metrics: dict[str, Any]
    card: dict[str, Any]
    created: str

    @property
    def score(self) -> float:
        """Validation micro-F1 of the fine-tuned model (what promotion compares)."""
        value = (self.metrics.get("new") or {}).get("micro_f1")
        if value is None:
            raise RegistryError(f"{self.path}/metrics.json has no new.micro_f1")
        return float(value)

    def summary(self) -> dict[str, Any]:
        new, base = self.metrics.get("new") or {}, self.metrics.get("base") or {}
        return {"name": self.name, "version": self.version, "created": self.created, "path": str(self.path),
                "micro_f1": new.get("micro_f1"), "micro_map": new.get("micro_map"),
                "base_micro_f1": base.get("micro_f1"), "base_model_version": self.card.get("base_model_version"),
                "model_version": self.card.get("model_version"), "new_classes": self.card.get("new_classes", [])}


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    reason: str
    candidate: ModelVersion
    previous: ModelVersion | None
    candidate_score: float
    active_score: float | None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def version_of(run_dir: Path) -> str:
    """Digest of the weights file (which also embeds the vocabulary) and the thresholds file."""
    from safetensors import safe_open

    with safe_open(str(run_dir / "model.safetensors"), framework="pt") as f:
        vocab = (f.metadata() or {}).get("vocabulary", "")
    parts = [_sha256(run_dir / "model.safetensors"), hashlib.sha256(vocab.encode()).hexdigest(),
             _sha256(run_dir / "thresholds.txt")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path} is missing") from None
    except json.JSONDecodeError as e:
        raise RegistryError(f"{path} is not valid JSON: {e}") from e


class ModelRegistry:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- reading ----------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        if not _NAME.match(name or ""):
            raise RegistryError(f"model name {name!r} must be letters, digits, '.', '_' or '-' (not starting with one)")
        return self.root / name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def get(self, name: str, version: str) -> ModelVersion:
        path = self._dir(name) / version
        if not re.fullmatch(r"[0-9a-f]{12}", version or "") or not (path / _INFO).is_file():
            known = ", ".join(v.version for v in self.versions(name)) if self._dir(name).is_dir() else "none"
            raise RegistryError(f"model {name!r} has no version {version!r} in {self.root} (versions: {known})")
        info = _read_json(path / _INFO)
        return ModelVersion(name, version, path, path / "model.safetensors", path / "thresholds.txt",
                            _read_json(path / "metrics.json"), _read_json(path / "card.json"), info["created"])

    def versions(self, name: str) -> list[ModelVersion]:
        folder = self._dir(name)
        if not folder.is_dir():
            return []
        found = [self.get(name, p.name) for p in folder.iterdir() if (p / _INFO).is_file()]
        return sorted(found, key=lambda v: (v.created, v.version))

    def active(self, name: str) -> ModelVersion | None:
        pointer = self._dir(name) / _ACTIVE
        if not pointer.is_file():
            return None
        return self.get(name, pointer.read_text(encoding="utf-8").strip())

    def history(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / _HISTORY
        return _read_json(path) if path.is_file() else {"stack": [], "events": []}

    # -- writing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        folder = self._dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / _LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def register(self, name: str, run_dir: str | os.PathLike[str]) -> ModelVersion:
        """Copy a finished fine-tuning folder in (all or nothing); the same content twice is one version."""
        run = Path(run_dir)
        self._dir(name)  # a bad name fails before anything is read
        missing = [f for f in _REQUIRED if not (run / f).is_file()]
        if missing:
            raise RegistryError(f"{run} is not a finished fine-tuning run: missing {', '.join(missing)}")
        version = version_of(run)
        with self._locked(name) as folder:
            dest = folder / version
            if (dest / _INFO).is_file():
                return self.get(name, version)
            tmp = folder / f".{version}.{secrets.token_hex(4)}.tmp"
            tmp.mkdir()
            try:
                for file in _REQUIRED + _OPTIONAL:
                    if (run / file).is_file():
                        shutil.copy2(run / file, tmp / file)
                atomic_write_json(tmp / _INFO, {"created": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                                                + f".{time.time_ns() % 1_000_000_000:09d}Z",
                                                "source": str(run.resolve())})
                if dest.exists():  # a half-copied folder from a crash: replace it
                    shutil.rmtree(dest)
                os.rename(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._event(folder, "register", version)
        return self.get(name, version)

    def _event(self, folder: Path, action: str, version: str, **extra: Any) -> dict[str, Any]:
        path = folder / _HISTORY
        history = _read_json(path) if path.is_file() else {"stack": [], "events": []}
        if action in ("promote", "rollback"):
            if action == "promote":
                history["stack"].append(version)
            else:
                history["stack"].pop()
            atomic_write_text(folder / _ACTIVE, version + "\n")
        history["events"].append({"action": action, "version": version,
                                  "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra})
        atomic_write_json(path, history)
        return history

    def promote(self, name: str, version: str, *, force: bool = False, min_val_images: int = 0) -> PromotionResult:
        """Make `version` active if its validation micro-F1 beats what serves now (or `force`).

        What serves now is the active version, or before the first promotion the base
        checkpoint the run started from (its micro-F1 on the same held-out images, in
        metrics.json). A run validated on fewer than `min_val_images` images has no
        evidence either way: it stays registered, not promoted, unless forced."""
        candidate = self.get(name, version)
        with self._locked(name) as folder:
            previous = self.active(name)
            score = candidate.score
            active_score = previous.score if previous is not None else None
            if previous is not None and previous.version == version:
                return PromotionResult(False, f"{version} is already active", candidate, previous, score, active_score)
            val_images = validation_images(candidate.metrics)
            base_score = (candidate.metrics.get("base") or {}).get("micro_f1")
            if val_images is not None and val_images < min_val_images:
                ok, reason = force, (f"validated on {val_images} image(s), fewer than the {min_val_images} needed "
                                     "to judge it: registered, not promoted; annotate more tasks, or promote it "
                                     "anyway with force=True (--force)")
                if force:
                    reason = f"forced: validated on only {val_images} image(s) (fewer than {min_val_images})"
            elif previous is None and base_score is not None and not score > float(base_score) and not force:
                ok, reason = False, (f"validation micro-F1 {score:.4f} does not beat the base model's "
                                     f"{float(base_score):.4f} on the same {val_images or '?'} image(s); "
                                     "pass force=True (--force) to promote anyway")
            elif previous is None:
                ok, reason = True, (f"validation micro-F1 {score:.4f} beats the base model's {float(base_score):.4f}"
                                    if base_score is not None and score > float(base_score)
                                    else "forced: no comparison with the base model" if force
                                    else "no active version yet (no base-model metrics to compare)")
            elif score > previous.score:
                ok, reason = True, f"validation micro-F1 {score:.4f} beats the active {previous.score:.4f}"
            elif force:
                ok, reason = True, (f"forced: validation micro-F1 {score:.4f} does not beat the active "
                                    f"{previous.score:.4f}")
            else:
                ok, reason = False, (f"validation micro-F1 {score:.4f} does not beat the active {previous.version}'s "
                                     f"{previous.score:.4f}; pass force=True (--force) to promote anyway")
            if ok:
                self._event(folder, "promote", version, reason=reason,
                            previous=previous.version if previous else None)
            return PromotionResult(ok, reason, candidate, previous, score, active_score)

    def rollback(self, name: str) -> ModelVersion:
        """Re-activate the version that was active before the current one."""
        with self._locked(name) as folder:
            stack = self.history(name)["stack"]
            if len(stack) < 2:
                raise RegistryError(f"model {name!r} has no earlier active version to roll back to")
            self._event(folder, "rollback", stack[-2], undone=stack[-1])
        active = self.active(name)
        assert active is not None
        return active


def validation_images(metrics: dict[str, Any]) -> int | None:
    """How many held-out images a run's metrics were measured on (None: not recorded)."""
    for value in ((metrics.get("split") or {}).get("val"), (metrics.get("new") or {}).get("images")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def resolve_registry_uri(uri: str) -> Path:
    """'registry://<root>/<name>' (the active version) or '...<name>@<version>' -> its model file."""
    rest = uri[len(REGISTRY_SCHEME):].rstrip("/")
    root, _, last = rest.rpartition("/")
    name, _, version = last.partition("@")
    if not root or not name:
        raise CheckpointNotFoundError(f"{uri!r} is not of the form registry://<root>/<name>[@<version>]")
    registry = ModelRegistry(root)
    try:
        chosen = registry.get(name, version) if version else registry.active(name)
    except RegistryError as e:
        raise CheckpointNotFoundError(str(e)) from e
    if chosen is None:
        raise CheckpointNotFoundError(f"model {name!r} in {root} has no active version; promote one with "
                                      f"`ram-annotate models promote --root {root} {name} VERSION`")
    return chosen.checkpoint
