"""`ram-annotate convert`: an fp16 safetensors file holding only the tagging path.

The official `.pth` files carry optimizer state and training-only modules (5.6 GB for RAM);
the tagging path in fp16 is a fraction of that, loads memory-mapped, needs no pickle, and
records its configs and vocabulary so it loads with no other flags.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from safetensors.torch import save_file

from .checkpoint import RANDOM_WEIGHTS_MARKER
from ..model.config import HeadConfig, SwinConfig
from ..errors import ConfigError
from ..model.ram import RAMTagger
from ..model.vocab import TagVocabulary

if TYPE_CHECKING:  # a type only: model_files resolves random:tiny, which writes through this module
    from .model_files import LoadedModel

__all__ = ["convert_checkpoint", "write_tagger_file", "CONVERTED_FORMAT", "CONVERTED_SUFFIX"]

CONVERTED_FORMAT = "ram-annotate/1"
CONVERTED_SUFFIX = ".safetensors"
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_tagger_file(model: RAMTagger, output: str | Path, *, variant: str, swin: SwinConfig, head: HeadConfig,
                      vocab: TagVocabulary, random_weights: bool, source_model_version: str,
                      dtype: str = "fp16", metadata: Mapping[str, Any] | None = None) -> Path:
    """Write `model`'s learned parameters and everything needed to rebuild it, atomically.

    `metadata` adds (or replaces) header entries; values are stored as JSON.

    The file gets the permissions a plain `open()` would give it (0666 less the umask):
    safetensors writes through a private temporary file, which would leave it 0600.
    """
    output = Path(output)
    if output.suffix != CONVERTED_SUFFIX:
        raise ConfigError(f"the output file must end in {CONVERTED_SUFFIX} (it is read by its suffix), "
                          f"not {output.name!r}")
    target = _DTYPES[dtype]
    tensors = {k: (v.to(target) if v.is_floating_point() else v).contiguous()
               for k, v in model.state_dict().items()}
    header = {
        "format": CONVERTED_FORMAT,
        "variant": json.dumps(variant),
        "swin_config": json.dumps(swin.to_dict()),
        "head_config": json.dumps(head.to_dict()),
        "vocabulary": json.dumps(vocab.to_dict(), ensure_ascii=False),  # the file is self-contained
        "source_model_version": json.dumps(source_model_version),
        "dtype": json.dumps(dtype),
        RANDOM_WEIGHTS_MARKER: json.dumps(random_weights),
    }
    header.update({key: json.dumps(value, ensure_ascii=False) for key, value in (metadata or {}).items()})
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        save_file(tensors, str(tmp), metadata=header)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output


def convert_checkpoint(loaded: LoadedModel, output: str | Path, *, dtype: str = "fp16",
                       metadata: Mapping[str, Any] | None = None) -> Path:
    """Write `loaded`'s weights (learned parameters only) to `output`, atomically.

    A fine-tune keeps its generation (the `ft<N>-` of its model_version) through a conversion."""
    if loaded.generation and "finetune" not in (metadata or {}):
        metadata = {**(metadata or {}), "finetune": {"generation": loaded.generation}}
    return write_tagger_file(loaded.model, output, variant=loaded.variant, swin=loaded.swin, head=loaded.head,
                             vocab=loaded.vocab, random_weights=loaded.random_weights,
                             source_model_version=loaded.model_version, dtype=dtype, metadata=metadata)
