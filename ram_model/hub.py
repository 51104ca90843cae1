"""Resolving a checkpoint reference to a local file: a path, a preset name, `hf://owner/repo/file`,
or `registry://<root>/<name>[@<version>]` (a fine-tuned model in a `ram_model.registry`).

Downloads go through `huggingface_hub` and its cache, so a file fetched once (on this
machine or copied into the cache) is found again without the network. When neither
works, the error says which file is missing and how to get it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import PRESETS, Preset
from .errors import CheckpointNotFoundError

__all__ = ["ResolvedCheckpoint", "resolve_checkpoint", "parse_hf_uri"]


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


def _download(repo: str, filename: str, cache_dir: str | None) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:  # pragma: no cover - a core dependency
        raise CheckpointNotFoundError("huggingface_hub is not installed; pass a local --checkpoint path") from e
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, cache_dir=cache_dir))
    except Exception as e:  # the hub raises many types: offline, 404, auth, timeouts
        raise CheckpointNotFoundError(
            f"checkpoint {filename!r} from the Hugging Face repo {repo!r} is not in the local cache and "
            f"could not be downloaded ({type(e).__name__}: {e}). On a machine with internet run "
            f"`huggingface-cli download {repo} {filename}` (then copy the cache, or the file, here) and "
            "pass --checkpoint /path/to/the/file."
        ) from e


def resolve_checkpoint(ref: str, *, cache_dir: str | None = None) -> ResolvedCheckpoint:
    """Find the file `ref` names; a local path wins over a preset of the same name."""
    local = Path(ref).expanduser()
    if local.is_file():
        return ResolvedCheckpoint(local, None)
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
        f"checkpoint {ref!r} is not a local file, a preset ({', '.join(PRESETS)}), an hf://owner/repo/file URI "
        "or a registry://<root>/<name>[@<version>] URI"
    )
