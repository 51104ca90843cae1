"""How a `model_version` string reads, kept free of torch so clients and the plugin can check it.

A version reads from its start: `ft<N>-` for the N-th fine-tune in a line from a base
checkpoint (Label Studio's prediction tabs and FiftyOne's lists cut long names in the
middle, so a base and its fine-tune must differ in their first characters), then
`random-` for random weights, then the variant and the digests that make it unique:
`ram_plus-1a2b3c4d5e-9f8e7d6c5b4a`, `ft2-ram_plus-...`, `random-ram_plus-...`,
`ft1-random-ram_plus-...`.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["compose_model_version", "finetune_generation", "is_random_version"]

_RANDOM_VERSION = re.compile(r"(ft\d+-)?random-")


def compose_model_version(variant: str, fingerprint: str, vocab_digest: str, *, random_weights: bool,
                          generation: int) -> str:
    tuned = f"ft{generation}-" if generation else ""
    prefix = "random-" if random_weights else ""
    return f"{tuned}{prefix}{variant}-{fingerprint}-{vocab_digest}"


def is_random_version(model_version: str) -> bool:
    """Whether a `model_version` names random weights: `random-...` or a fine-tune of them, `ft<N>-random-...`."""
    return bool(_RANDOM_VERSION.match(model_version))


def finetune_generation(metadata: dict[str, Any]) -> int:
    """The fine-tune generation a checkpoint's metadata records: 0 for a base checkpoint, and 1
    for a fine-tune written before generations were counted."""
    finetune = metadata.get("finetune")
    if not isinstance(finetune, dict):
        return 0
    generation = finetune.get("generation", 1)
    return generation if isinstance(generation, int) and not isinstance(generation, bool) and generation > 0 else 1
