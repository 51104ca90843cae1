"""Exceptions raised by the engine.

Integrations translate these into their own vocabulary (HTTP status codes in the
backend, form errors in the FiftyOne plugin), so each one names what went wrong and
what to do about it in its message.
"""
from __future__ import annotations

__all__ = [
    "RamModelError",
    "ConfigError",
    "CheckpointNotFoundError",
    "CheckpointMismatchError",
    "ImageLoadError",
    "is_out_of_memory",
]


class RamModelError(Exception):
    """Base class of every error ram_model raises on purpose."""


class ConfigError(RamModelError, ValueError):
    """A configuration file or option is missing, malformed or inconsistent."""


class CheckpointNotFoundError(RamModelError, FileNotFoundError):
    """The checkpoint is neither a local file nor obtainable from the Hugging Face hub."""


class CheckpointMismatchError(RamModelError, ValueError):
    """The checkpoint's keys or shapes do not fit the model built from the configs."""


class ImageLoadError(RamModelError, ValueError):
    """An image could not be read, decoded or accepted (missing, corrupt, too large, odd mode)."""


def is_out_of_memory(error: BaseException) -> bool:
    """True for an accelerator running out of memory (the engine then retries with half the batch)."""
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()
