"""The tag vocabulary: English and Chinese names plus per-class thresholds, in class-index order."""
from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from .config import packaged_file
from ..errors import ConfigError

__all__ = ["TagVocabulary", "read_lines", "read_thresholds"]

# The official model's global threshold, used for classes the threshold file does not list.
DEFAULT_THRESHOLD = 0.68


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file without line endings (a final newline is optional)."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as e:
        raise ConfigError(f"file not found: {path}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text: {e}") from e


@dataclass(frozen=True)
class TagVocabulary:
    names: tuple[str, ...]
    names_zh: tuple[str, ...]
    thresholds: np.ndarray = field(repr=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(self.names_zh) != k or self.thresholds.shape != (k,):
            raise ConfigError(
                f"vocabulary sizes disagree: {k} English names, {len(self.names_zh)} Chinese names, "
                f"{self.thresholds.shape[0]} thresholds"
            )
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(self.names)})

    @classmethod
    def from_files(cls, tag_list: str | Path | None = None, tag_list_zh: str | Path | None = None,
                   thresholds: str | Path | None = None) -> "TagVocabulary":
        """Read the three official files; None means the packaged official copy.

        The official Chinese list carries stray trailing spaces; they are stripped. A
        missing Chinese list or threshold file yields empty names / the official 0.68.
        """
        names = [n.strip() for n in read_lines(tag_list or packaged_file("ram_tag_list.txt"))]
        while names and not names[-1]:
            names.pop()
        if tag_list_zh is None and tag_list is not None:
            names_zh = [""] * len(names)
        else:
            names_zh = [n.strip() for n in read_lines(tag_list_zh or packaged_file("ram_tag_list_chinese.txt"))]
            names_zh = (names_zh + [""] * len(names))[: len(names)]
        if thresholds is None and tag_list is not None:
            values = np.full(len(names), DEFAULT_THRESHOLD, dtype=np.float32)
        else:
            values = read_thresholds(thresholds or packaged_file("ram_tag_list_threshold.txt"), len(names))
        return cls(tuple(names), tuple(names_zh), values)

    def to_dict(self) -> dict[str, list]:
        """The one stored shape of a vocabulary (converted checkpoints' header, Tag with RAM's run
        record): `{"names", "names_zh", "thresholds"}`, JSON-able."""
        return {"names": list(self.names), "names_zh": list(self.names_zh),
                "thresholds": [float(t) for t in self.thresholds]}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any], *, source: str = "stored vocabulary") -> "TagVocabulary":
        """`to_dict`'s shape back; a missing Chinese list is empty names, missing thresholds the default."""
        names = stored.get("names") if isinstance(stored, Mapping) else None
        if not isinstance(names, (list, tuple)) or not names:
            raise ConfigError(f"{source} holds no tag names")
        names_zh = stored.get("names_zh") or [""] * len(names)
        thresholds = stored.get("thresholds") or [DEFAULT_THRESHOLD] * len(names)
        return cls(tuple(str(n) for n in names), tuple(str(n) for n in names_zh),
                   np.asarray(thresholds, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, name: str) -> int:
        """Class index of an English tag name (exact); KeyError when absent."""
        return self._index[name]

    def subset(self, names: Sequence[str]) -> "TagVocabulary":
        """The vocabulary of `names` only, in the order given (a repeated name keeps its first place).

        Chinese names and thresholds travel with their English name, so a restricted engine's
        outputs read exactly like the full one's for those tags. Every unknown name is
        reported at once, with the closest real tags, so a typo costs one run, not one per name.
        """
        if isinstance(names, str):
            raise ConfigError(f"subset takes a sequence of tag names, not the string {names!r}")
        chosen = list(dict.fromkeys(str(n) for n in names))
        if not chosen:
            raise ConfigError("a restricted vocabulary needs at least one tag name")
        unknown = [n for n in chosen if n not in self._index]
        if unknown:
            raise ConfigError(self._unknown_message(unknown))
        rows = [self._index[n] for n in chosen]
        return TagVocabulary(tuple(chosen), tuple(self.names_zh[i] for i in rows),
                             self.thresholds[rows].astype(np.float32, copy=True))

    def _unknown_message(self, unknown: list[str]) -> str:
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name, self.names, n=3)
            parts.append(f"{name!r} (did you mean {', '.join(map(repr, close))}?)" if close else repr(name))
        return f"{len(unknown)} tag name(s) not in the tag list: {'; '.join(parts)}"

    @property
    def digest(self) -> str:
        """Short stable hash of names and thresholds (part of model_version)."""
        h = hashlib.sha256("\n".join(self.names).encode())
        h.update(np.ascontiguousarray(self.thresholds, dtype=np.float32).tobytes())
        return h.hexdigest()[:8]


def read_thresholds(path: str | Path, count: int) -> np.ndarray:
    """One threshold per line in class order; classes past the end keep the official 0.68."""
    lines = [line.strip() for line in read_lines(path)]
    lines = [line for line in lines if line]
    if len(lines) > count:
        raise ConfigError(f"{path} lists {len(lines)} thresholds for {count} tags")
    values = np.full(count, DEFAULT_THRESHOLD, dtype=np.float32)
    for i, line in enumerate(lines):
        try:
            values[i] = float(line)
        except ValueError as e:
            raise ConfigError(f"{path}, line {i + 1}: {line!r} is not a number") from e
    if np.any((values < 0) | (values > 1)):
        raise ConfigError(f"{path}: thresholds must lie in [0, 1]")
    return values
