"""`ram-annotate convert`: an fp16 safetensors file holding only the tagging path.

The official `.pth` files carry optimizer state and training-only modules (5.6 GB for RAM);
the tagging path in fp16 is a fraction of that, loads memory-mapped, needs no pickle, and
records its configs and vocabulary so it loads with no other flags.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file

from .checkpoint import RANDOM_WEIGHTS_MARKER
from .model_files import LoadedModel, vocabulary_metadata

__all__ = ["convert_checkpoint", "CONVERTED_FORMAT"]

CONVERTED_FORMAT = "ram-annotate/1"
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def convert_checkpoint(loaded: LoadedModel, output: str | Path, *, dtype: str = "fp16",
                       metadata: Mapping[str, Any] | None = None) -> Path:
    """Write `loaded`'s weights (learned parameters only) to `output`, atomically.

    `metadata` adds (or replaces) entries; values are stored as JSON.
    """
    output = Path(output)
    target = _DTYPES[dtype]
    tensors = {k: (v.to(target) if v.is_floating_point() else v).contiguous()
               for k, v in loaded.model.state_dict().items()}
    header = {
        "format": CONVERTED_FORMAT,
        "variant": json.dumps(loaded.variant),
        "swin_config": json.dumps(loaded.swin.to_dict()),
        "head_config": json.dumps(loaded.head.to_dict()),
        "vocabulary": vocabulary_metadata(loaded.vocab),
        "source_model_version": json.dumps(loaded.model_version),
        "dtype": json.dumps(dtype),
        RANDOM_WEIGHTS_MARKER: json.dumps(loaded.random_weights),
    }
    header.update({key: json.dumps(value, ensure_ascii=False) for key, value in (metadata or {}).items()})
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, output)
    return output
