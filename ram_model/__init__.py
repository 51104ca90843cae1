"""ram_model: the Recognize Anything (RAM / RAM++) tagging engine of ram-annotate.

Depends on torch, numpy and Pillow only (plus safetensors / huggingface_hub for files);
never imports Label Studio, FiftyOne or a web framework. See docs/seams.md for the API
the integrations use.
"""
import importlib
from typing import TYPE_CHECKING, Any

# Public names, resolved on first use: `ram_model.review` (NumPy only) can then be imported
# without loading torch.
_EXPORTS = {
    "PRESETS": "model.config", "EngineConfig": "model.config", "HeadConfig": "model.config",
    "SwinConfig": "model.config", "TaggingEngine": "inference.engine", "ImagePrediction": "inference.engine",
    "RamModelError": "errors", "ConfigError": "errors", "CheckpointNotFoundError": "errors",
    "CheckpointMismatchError": "errors", "ImageLoadError": "errors",
    "ProgressFn": "progress", "Tag": "inference.thresholds", "ThresholdPolicy": "inference.thresholds", "TagVocabulary": "model.vocab",
}

if TYPE_CHECKING:
    from .model.config import PRESETS, EngineConfig, HeadConfig, SwinConfig
    from .inference.engine import ImagePrediction, TaggingEngine
    from .errors import (CheckpointMismatchError, CheckpointNotFoundError, ConfigError, ImageLoadError,
                         RamModelError)
    from .inference.thresholds import Tag, ThresholdPolicy
    from .progress import ProgressFn
    from .model.vocab import TagVocabulary


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ram_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "EngineConfig",
    "HeadConfig",
    "SwinConfig",
    "TaggingEngine",
    "ImagePrediction",
    "Tag",
    "ThresholdPolicy",
    "TagVocabulary",
    "ProgressFn",
    "RamModelError",
    "ConfigError",
    "CheckpointNotFoundError",
    "CheckpointMismatchError",
    "ImageLoadError",
]
