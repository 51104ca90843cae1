"""Task images kept as the server fetched them, under MODEL_DIR/images.

Training and the corrections export read these files, so neither ever needs Label
Studio (or its key) again. Files are named by content digest: the same image fetched
twice is stored once, and a name never points at other bytes.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["cache_image", "image_suffix"]

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def image_suffix(data: bytes) -> str:
    """A file suffix from the leading bytes (tools that pick a reader by suffix then agree with the content)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for signature, suffix in _SIGNATURES:
        if data.startswith(signature):
            return suffix
    return ".img"


def cache_image(folder: Path, data: bytes) -> Path:
    """Write `data` once under `folder` (atomically) and return its path."""
    digest = hashlib.sha256(data).hexdigest()
    path = folder / digest[:2] / f"{digest[:40]}{image_suffix(data)}"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
