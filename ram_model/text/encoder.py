"""Loading CLIP's text encoder and turning texts into L2-normalised 512-d embeddings.

`--text-encoder` names a Hugging Face repo (default `openai/clip-vit-base-patch16`, the
ViT-B/16 whose text tower wrote RAM++'s label embeddings), a local folder in the
`transformers` layout, or `random:tiny` (built on the spot, random weights). Repos come
from the local Hugging Face cache like our checkpoints (`ram_model.weights.hub`): a download is
tried only when the hub can be reached, and otherwise the error is one line naming the
`hf download` command. Loaded encoders are kept per process, so the engine, the FiftyOne
model and the search command share one.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import torch

from ..model.config import LABEL_EMBED_DIM
from ..errors import CheckpointNotFoundError, ConfigError

__all__ = ["DEFAULT_TEXT_ENCODER", "RANDOM_TEXT_ENCODER", "TextEncoder", "load_text_encoder"]

DEFAULT_TEXT_ENCODER = "openai/clip-vit-base-patch16"
RANDOM_TEXT_ENCODER = "random:tiny"
# Bump when random:tiny's weights or tokenizer change, so cached embeddings of the old one are not reused.
_TINY_VERSION = 1
_ENCODE_BATCH = 256

_loaded: dict[tuple[str, str | None], "TextEncoder"] = {}
_loaded_lock = threading.Lock()


class TextEncoder:
    """A tokenizer and `CLIPTextModelWithProjection` on the CPU, called under a lock from any thread.

    `identity` names the exact weights (repo and snapshot, or `random:tiny-vN`): it keys the
    on-disk embedding cache and the model_version of engines with open-set classes.
    """

    def __init__(self, tokenizer, model, identity: str, *, random_weights: bool) -> None:
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.identity = identity
        self.random_weights = random_weights
        self.dim = int(model.config.projection_dim)
        if self.dim != LABEL_EMBED_DIM:
            raise ConfigError(f"text encoder {identity!r} projects to {self.dim} dimensions; RAM's label embeddings "
                              f"have {LABEL_EMBED_DIM} (use a CLIP ViT-B model such as {DEFAULT_TEXT_ENCODER})")
        self._lock = threading.Lock()

    @property
    def max_tokens(self) -> int:
        """Tokens the encoder reads (CLIP: 77); `encode` truncates anything longer."""
        return int(getattr(self.tokenizer, "model_max_length", 77) or 77)

    def token_count(self, text: str) -> int:
        """Tokens of `text` with the start and end tokens, untruncated (under the lock: a fast
        tokenizer shared by threads must not be called while `encode` sets its truncation)."""
        with self._lock:
            return len(self.tokenizer(text, truncation=False)["input_ids"])

    def encode(self, texts: Sequence[str], *, batch_size: int = _ENCODE_BATCH) -> torch.Tensor:
        """[N, 512] float32 embeddings, each of unit length (texts past 77 tokens are truncated, as officially)."""
        if isinstance(texts, str):
            raise ConfigError("encode takes a sequence of texts, not one string")
        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                       return_tensors="pt")
                batch.pop("token_type_ids", None)
                embeds = self.model(**batch).text_embeds.float()
                out.append(embeds / embeds.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out)


def _not_available(ref: str, why: str) -> CheckpointNotFoundError:
    return CheckpointNotFoundError(
        f"text encoder {ref!r} is not in the local Hugging Face cache and {why}. On a machine with internet run "
        f"`hf download {ref}` and copy the Hugging Face cache folder here (or pass --text-encoder /path/to/folder); "
        f"--text-encoder {RANDOM_TEXT_ENCODER} tries the feature without weights (random embeddings)."
    )


def _snapshot_id(ref: str, cache_dir: str | None) -> str:
    """`repo@commit` of the cached snapshot (its folder name is the commit), else the repo name."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(ref, "config.json", cache_dir=cache_dir)
    return f"{ref}@{Path(cached).parent.name}" if isinstance(cached, str) else ref


def _from_pretrained(ref: str, cache_dir: str | None, local_only: bool):
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(ref, cache_dir=cache_dir, local_files_only=local_only)
    model = CLIPTextModelWithProjection.from_pretrained(ref, cache_dir=cache_dir, local_files_only=local_only)
    return tokenizer, model


def _load_pretrained(ref: str, cache_dir: str | None) -> TextEncoder:
    from ..weights.hub import _hub_unreachable, _offline

    local = Path(ref).expanduser()
    if local.is_dir():
        try:
            tokenizer, model = _from_pretrained(str(local), None, True)
        except (OSError, ValueError) as e:
            raise CheckpointNotFoundError(f"text encoder folder {ref}: {str(e).splitlines()[0]}") from None
        return TextEncoder(tokenizer, model, f"{local.resolve()}", random_weights=False)
    if ref.count("/") != 1:
        raise CheckpointNotFoundError(f"text encoder {ref!r} is not a folder, a Hugging Face repo (owner/name) "
                                      f"or {RANDOM_TEXT_ENCODER}")
    from huggingface_hub import try_to_load_from_cache

    # Not cached: decide before importing transformers (seconds), so a server answering
    # Label Studio's /setup without the weights says so at once.
    cached = isinstance(try_to_load_from_cache(ref, "config.json", cache_dir=cache_dir), str)
    try:
        if not cached:
            raise OSError("not in the cache")
        tokenizer, model = _from_pretrained(ref, cache_dir, True)
    except (OSError, ValueError):
        if _offline():
            raise _not_available(ref, "HF_HUB_OFFLINE is set") from None
        why = _hub_unreachable()
        if why is not None:
            raise _not_available(ref, f"the hub cannot be reached ({why})") from None
        try:
            tokenizer, model = _from_pretrained(ref, cache_dir, False)
        except Exception as e:  # noqa: BLE001 - 404, auth, a dropped connection
            raise _not_available(ref, f"could not be downloaded ({type(e).__name__})") from None
    return TextEncoder(tokenizer, model, _snapshot_id(ref, cache_dir), random_weights=False)


def load_text_encoder(ref: str | None = None, *, cache_dir: str | None = None) -> TextEncoder:
    """The encoder `ref` names (None: CLIP ViT-B/16), loaded once per process."""
    ref = (ref or DEFAULT_TEXT_ENCODER).strip()
    key = (ref, cache_dir)
    with _loaded_lock:
        if key not in _loaded:
            if ref.startswith("random:"):
                if ref != RANDOM_TEXT_ENCODER:
                    raise CheckpointNotFoundError(f"unknown random text encoder {ref!r}; use {RANDOM_TEXT_ENCODER}")
                from .tiny import build_tiny_text_encoder

                tokenizer, model = build_tiny_text_encoder()
                _loaded[key] = TextEncoder(tokenizer, model, f"{RANDOM_TEXT_ENCODER}-v{_TINY_VERSION}",
                                           random_weights=True)
            else:
                _loaded[key] = _load_pretrained(ref, cache_dir)
        return _loaded[key]
