"""Expanding command-line PATHS (files, folders, globs) into an ordered list of image paths."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

__all__ = ["IMAGE_EXTENSIONS", "expand_image_paths"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def expand_image_paths(items: Iterable[str]) -> list[str]:
    """Folders are walked recursively for image files; globs are expanded; order is stable.

    A named file is kept whatever its extension (and even if it is missing), so that the
    run reports an error for it instead of silently skipping what the user asked for.
    """
    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        if p not in seen:
            seen.add(p)
            out.append(p)

    for item in items:
        path = Path(item)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if _is_image(Path(name)):
                        add(str(Path(root) / name))
        elif any(ch in item for ch in "*?["):
            for match in sorted(glob.glob(item, recursive=True)):
                if Path(match).is_file() and _is_image(Path(match)):
                    add(match)
        else:
            add(item)
    return out
