"""Reading a descriptions file: `{tag: [description, ...]}` JSON, or the official list of
one-key objects (`[{tag: [descriptions]}, ...]`, recognize-anything's
`*_llm_tag_descriptions.json`).

Each class may have any number of descriptions: the count is stored per class, never
inferred by dividing rows by classes (the official code's equal-count assumption,
recognize-anything issue #154). Every defect is one line naming the file and the class.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["read_descriptions", "check_descriptions", "name_key"]


def name_key(name: str) -> str:
    """Names that differ only in case or spacing describe the same class."""
    return " ".join(name.lower().split())


def check_descriptions(items: list[tuple[Any, Any]], source: str) -> dict[str, tuple[str, ...]]:
    """(name, descriptions) pairs -> {name: descriptions}; a ConfigError for any bad entry."""
    out: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for name, texts in items:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{source}: a class name must be a non-empty string, not {name!r}")
        name = name.strip()
        if name_key(name) in seen:
            raise ConfigError(f"{source}: class {name!r} appears twice (also as {seen[name_key(name)]!r})")
        seen[name_key(name)] = name
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise ConfigError(f"{source}: the descriptions of {name!r} must be a list of strings")
        if not texts:
            raise ConfigError(f"{source}: class {name!r} has an empty description list")
        bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ConfigError(f"{source}: class {name!r} has a description that is not a non-empty string: {bad[0]!r}")
        out[name] = tuple(t.strip() for t in texts)
    if not out:
        raise ConfigError(f"{source} describes no class")
    return out


def read_descriptions(path: str | Path) -> dict[str, tuple[str, ...]]:
    """The classes and descriptions of a descriptions file, in file order."""
    source = f"descriptions file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source} cannot be read: {e}") from None
    try:
        # Pairs, not a dict: a key written twice must be an error, not silently the last one.
        data = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source} is not JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                          'expected {"tag": ["description", ...], ...}') from None
    if isinstance(data, list) and all(isinstance(item, list) and all(isinstance(p, tuple) for p in item)
                                      for item in data):
        # The official format: a list of one-key objects (each parsed to a list of pairs).
        items = [pair for item in data for pair in item]
    elif isinstance(data, list) and data and all(isinstance(p, tuple) for p in data):
        items = data
    else:
        raise ConfigError(f'{source} must hold an object {{"tag": ["description", ...]}} or a list of them')
    return check_descriptions(items, source)
