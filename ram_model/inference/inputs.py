"""Expanding command-line PATHS (files, folders, globs) into an ordered list of image paths."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable

__all__ = ["IMAGE_EXTENSIONS", "ExpandedPaths", "expand_image_paths", "image_identity"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def image_identity(path: str) -> str:
    """One name per file, however it was spelled: relative, `./`, `..`, through a symlink.

    Resume and de-duplication compare these, so an image reached by two spellings is
    tagged once.
    """
    return os.path.realpath(os.path.expanduser(path))


class ExpandedPaths(list):
    """The image paths in order (a list), plus the arguments that matched no image."""

    def __init__(self) -> None:
        super().__init__()
        self.unmatched: list[str] = []


def expand_image_paths(items: Iterable[str]) -> ExpandedPaths:
    """Folders are walked recursively for image files; globs are expanded; order is stable.

    A named file is kept whatever its extension (and even if it is missing), so that the
    run reports an error for it instead of silently skipping what the user asked for.
    A file reached twice (`a.png ./a.png`, a folder and a file in it, a symlinked folder)
    is listed once, under its first spelling. Walks skip hidden folders (`.git`, an export's
    `.ram-export` generations) and macOS `._*` resource forks, which are not images.
    """
    out = ExpandedPaths()
    seen: set[str] = set()

    def add(p: str) -> bool:
        key = image_identity(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
        return True

    for item in items:
        path = Path(item)
        matched = False
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if _is_image(Path(name)) and not name.startswith("._"):
                        matched = add(str(Path(root) / name))
        elif any(ch in item for ch in "*?[") and not path.exists():
            for match in sorted(glob.glob(item, recursive=True)):
                if Path(match).is_file() and _is_image(Path(match)):
                    matched = add(match)
        else:
            matched = add(item)
        if not matched:
            out.unmatched.append(item)
    return out
