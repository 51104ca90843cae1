"""Resolving a checkpoint reference to a local file: a path, a preset name, `hf://owner/repo/file`,
or `registry://<root>/<name>[@<version>]` (a fine-tuned model in a `ram_model.weights.registry`).

Downloads go through `huggingface_hub` and its cache, so a file fetched once (on this
machine or copied into the cache) is found again without the network. When neither
works, the error says which file is missing and how to get it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..model.config import PRESETS, Preset
from ..errors import CheckpointNotFoundError

# `random:tiny`: see ram_model.weights.random_preset (imported on use: it builds a model with torch).
RANDOM_PREFIX = "random:"

__all__ = ["ResolvedCheckpoint", "resolve_checkpoint", "parse_hf_uri"]

# How long the one reachability request may take before the hub counts as unreachable.
_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ResolvedCheckpoint:
    path: Path
    preset: Preset | None


def parse_hf_uri(uri: str) -> tuple[str, str]:
    """'hf://owner/repo/path/to/file' -> ('owner/repo', 'path/to/file')."""
    parts = uri[len("hf://"):].strip("/").split("/")
    if len(parts) < 3 or not all(parts):
        raise CheckpointNotFoundError(f"{uri!r} is not of the form hf://owner/repo/file")
    return "/".join(parts[:2]), "/".join(parts[2:])


def _fetch_command(repo: str, filename: str) -> str:
    """The download command of the installed huggingface_hub (its old `huggingface-cli` is gone)."""
    return f"hf download {repo} {filename} --local-dir ."


def _not_available(repo: str, filename: str, why: str) -> CheckpointNotFoundError:
    return CheckpointNotFoundError(
        f"checkpoint {filename!r} from the Hugging Face repo {repo!r} is not in the local cache and {why}. "
        f"On a machine with internet run `{_fetch_command(repo, filename)}`, copy the file here and pass "
        f"--checkpoint /path/to/{filename.rsplit('/', 1)[-1]}. To try ram-annotate without the weights: "
        "`ram-annotate demo`."
    )


def _offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, re-read so a changed environment counts."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _hub_unreachable(timeout_s: float = _PROBE_TIMEOUT_S) -> str | None:
    """Why the hub cannot be reached, or None. One request, no retries.

    huggingface_hub retries a failed HEAD five times with back-off (about half a
    minute) before giving up; without a route to the hub that only delays the answer.
    """
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout_s)
    except Exception as e:  # noqa: BLE001 - DNS, refused, timeout, proxy, TLS: all mean "not now"
        return f"{type(e).__name__}: {e}"
    return None


def _download(repo: str, filename: str, cache_dir: str | None) -> Path:
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError as e:  # pragma: no cover - a core dependency
        raise CheckpointNotFoundError("huggingface_hub is not installed; pass a local --checkpoint path") from e
    cached = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
    if isinstance(cached, str):
        return Path(cached)
    if _offline():
        raise _not_available(repo, filename, "HF_HUB_OFFLINE is set")
    why = _hub_unreachable()
    if why is not None:
        raise _not_available(repo, filename, f"the hub cannot be reached ({why})")
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, cache_dir=cache_dir))
    except Exception as e:  # the hub raises many types: 404, auth, a dropped connection
        raise _not_available(repo, filename, f"could not be downloaded ({type(e).__name__}: {e})") from e


def resolve_checkpoint(ref: str, *, cache_dir: str | None = None) -> ResolvedCheckpoint:
    """Find the file `ref` names; a local path wins over a preset of the same name."""
    local = Path(ref).expanduser()
    if local.is_file():
        return ResolvedCheckpoint(local, None)
    if ref.startswith(RANDOM_PREFIX):
        from .random_preset import random_checkpoint

        return ResolvedCheckpoint(random_checkpoint(ref, cache_dir=cache_dir), None)
    if ref.startswith("registry://"):
        from .registry import resolve_registry_uri  # only registry users pay for its import

        return ResolvedCheckpoint(resolve_registry_uri(ref), None)
    if ref.startswith("hf://"):
        repo, filename = parse_hf_uri(ref)
        return ResolvedCheckpoint(_download(repo, filename, cache_dir), None)
    if ref in PRESETS:
        preset = PRESETS[ref]
        return ResolvedCheckpoint(_download(preset.hf_repo, preset.hf_filename, cache_dir), preset)
    if local.exists():
        raise CheckpointNotFoundError(f"checkpoint path {ref!r} is not a file")
    raise CheckpointNotFoundError(
        f"checkpoint {ref!r} is not a local file, a preset ({', '.join(PRESETS)}), random:tiny, an "
        "hf://owner/repo/file URI or a registry://<root>/<name>[@<version>] URI"
    )
