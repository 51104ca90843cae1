"""ram_model: the Recognize Anything (RAM / RAM++) tagging engine of ram-annotate.

Depends on torch, numpy and Pillow only (plus safetensors / huggingface_hub for files);
never imports Label Studio, FiftyOne or a web framework. See docs/seams.md for the API
the integrations use.
"""
from .config import PRESETS, EngineConfig, HeadConfig, SwinConfig
from .engine import ImagePrediction, TaggingEngine
from .errors import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    ConfigError,
    ImageLoadError,
    RamModelError,
)
from .thresholds import Tag, ThresholdPolicy
from .vocab import TagVocabulary

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
    "RamModelError",
    "ConfigError",
    "CheckpointNotFoundError",
    "CheckpointMismatchError",
    "ImageLoadError",
]
