"""Mapping a project's label names onto RAM's tag vocabulary.

A Label Studio config or a FiftyOne field names its classes freely ("Dogs", "traffic_light",
"automobile"); RAM scores 4,585 fixed tags. Everything the review core does in project terms
(probabilities, thresholds, export ids) goes through one :class:`LabelMapping`, so the backend
and the plugin agree on which RAM tag a label means.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

__all__ = [
    "MatchKind",
    "LabelMapping",
    "normalize_tag",
    "load_synonyms",
    "build_label_mapping",
]

MatchKind = Literal["exact", "normalized", "plural", "synonym", "unmapped"]

_SEPARATORS = re.compile(r"[\s_\-]+")

# Irregular plurals that suffix rules get wrong; singular -> plural.
_IRREGULAR_PLURALS = {
    "man": "men",
    "woman": "women",
    "child": "children",
    "person": "people",
    "mouse": "mice",
    "foot": "feet",
    "tooth": "teeth",
    "goose": "geese",
    "ox": "oxen",
    "louse": "lice",
    "die": "dice",
    "leaf": "leaves",
    "knife": "knives",
    "wife": "wives",
    "life": "lives",
    "loaf": "loaves",
    "wolf": "wolves",
    "shelf": "shelves",
    "calf": "calves",
    "half": "halves",
    "cactus": "cacti",
    "fungus": "fungi",
}
_IRREGULAR_SINGULARS = {plural: singular for singular, plural in _IRREGULAR_PLURALS.items()}


def normalize_tag(name: str) -> str:
    """Return the comparison key of a tag name.

    Case, Unicode width forms, surrounding blanks and runs of spaces, underscores and
    hyphens do not change what a tag means, so they are folded away. The result is
    idempotent: ``normalize_tag(normalize_tag(x)) == normalize_tag(x)``.

    >>> normalize_tag("  Traffic__Light ")
    'traffic light'
    >>> normalize_tag("T-Shirt")
    't shirt'
    """
    if not isinstance(name, str):
        raise TypeError(f"tag names must be str, got {type(name).__name__}: {name!r}")
    folded = unicodedata.normalize("NFKC", name).casefold()
    return _SEPARATORS.sub(" ", folded).strip()


def _number_variants(key: str) -> list[str]:
    """Singular and plural forms of a normalised name, changing only its last word."""
    head, _, last = key.rpartition(" ")
    prefix = f"{head} " if head else ""
    forms: list[str] = []
    if last in _IRREGULAR_PLURALS:
        forms.append(_IRREGULAR_PLURALS[last])
    if last in _IRREGULAR_SINGULARS:
        forms.append(_IRREGULAR_SINGULARS[last])
    if len(last) > 3 and last.endswith("ies"):
        forms.append(last[:-3] + "y")
    if len(last) > 3 and last.endswith("ves"):
        forms += [last[:-3] + "f", last[:-3] + "fe"]
    if len(last) > 1 and last.endswith("s") and not last.endswith("ss"):
        forms.append(last[:-1])
    if len(last) > 2 and last.endswith("es"):
        forms.append(last[:-2])
    if last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        forms.append(last[:-1] + "ies")
    if last.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.append(last + "es")
    forms.append(last + "s")
    seen: list[str] = []
    for form in forms:
        candidate = prefix + form
        if candidate != key and candidate not in seen:
            seen.append(candidate)
    return seen


def load_synonyms(path: str | Path) -> dict[str, list[str]]:
    """Read a user mapping ``label -> RAM tag`` or ``label -> [RAM tags]`` from JSON or YAML.

    ``.json`` files are parsed as JSON and everything else as YAML (a superset of JSON), so a
    mapping written either way loads. Errors name the file and the offending key.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"synonym file not found: {source}")
    try:
        text = source.read_text(encoding="utf-8")
        raw = json.loads(text) if source.suffix.lower() == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"synonym file {source} is not valid {source.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"synonym file {source} must hold a mapping of label -> RAM tag(s), got {type(raw).__name__}")
    try:
        return _clean_synonyms(raw)
    except ValueError as exc:
        raise ValueError(f"synonym file {source}: {exc}") from None


def _clean_synonyms(raw: Mapping[Any, Any]) -> dict[str, list[str]]:
    cleaned: dict[str, list[str]] = {}
    for label, targets in raw.items():
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"label {label!r} must be a non-empty string")
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, Sequence) or isinstance(targets, (bytes, bytearray)) or not targets:
            raise ValueError(f"label {label!r} must map to a RAM tag or a non-empty list of RAM tags, got {targets!r}")
        for target in targets:
            if not isinstance(target, str) or not target.strip():
                raise ValueError(f"label {label!r} maps to {target!r}, which is not a tag name")
        cleaned[label] = list(dict.fromkeys(targets))
    return cleaned


@dataclass(frozen=True)
class LabelMapping:
    """Which RAM class indices each project label stands for.

    ``ram_indices[i][0]`` is label ``i``'s primary tag, the one written to finetune exports;
    the others only widen what the label's probability means (the maximum over all of them).
    """

    labels: tuple[str, ...]
    ram_indices: tuple[tuple[int, ...], ...]
    how: tuple[MatchKind, ...]
    ram_names: tuple[str, ...] = field(repr=False, compare=False)
    unused_synonyms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (len(self.labels) == len(self.ram_indices) == len(self.how)):
            raise ValueError("labels, ram_indices and how must have the same length")

    @property
    def unmapped(self) -> tuple[str, ...]:
        """Labels with no RAM tag: they get NaN probabilities and cannot be exported."""
        return tuple(label for label, idx in zip(self.labels, self.ram_indices, strict=True) if not idx)

    @property
    def digest(self) -> str:
        """Short hash of the mapping; stamped into model_version so stale predictions are visible."""
        payload = json.dumps([self.labels, self.ram_indices], separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]

    @property
    def num_ram_classes(self) -> int:
        return len(self.ram_names)

    def project_probs(self, probs: np.ndarray) -> np.ndarray:
        """RAM probabilities ``(N, K)`` or ``(K,)`` -> project probabilities ``(N, L)`` or ``(L,)``.

        A label mapped to several tags takes the highest of their probabilities (the label is
        present if any of its tags is); unmapped labels are NaN so that nothing downstream
        mistakes "no opinion" for "absent".

        >>> m = build_label_mapping(["Dogs", "pet", "unicorn"], ["dog", "cat", "car"],
        ...                         synonyms={"pet": ["dog", "cat"]})
        >>> m.project_probs(np.array([0.9, 0.2, 0.1]))
        array([0.9, 0.9, nan])
        """
        array = np.asarray(probs)
        if array.ndim not in (1, 2) or array.shape[-1] != self.num_ram_classes:
            raise ValueError(
                f"expected RAM probabilities of shape (N, {self.num_ram_classes}) or "
                f"({self.num_ram_classes},), got {array.shape}"
            )
        dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
        out = np.full(array.shape[:-1] + (len(self.labels),), np.nan, dtype=dtype)
        for column, indices in enumerate(self.ram_indices):
            if len(indices) == 1:
                out[..., column] = array[..., indices[0]]
            elif indices:
                out[..., column] = array[..., list(indices)].max(axis=-1)
        return out

    def project_thresholds(self, ram_thresholds: np.ndarray) -> np.ndarray:
        """RAM per-class thresholds ``(K,)`` -> project thresholds ``(L,)``.

        A multi-tag label uses the *lowest* threshold among its tags: its probability is the
        maximum over those tags, and a label should fire whenever the tag it is most willing to
        accept would. This leans towards suggesting a label (a reviewer removes a wrong
        suggestion faster than they notice a missing one). Unmapped labels are NaN.

        >>> m = build_label_mapping(["pet", "car"], ["dog", "cat", "car"],
        ...                         synonyms={"pet": ["dog", "cat"]})
        >>> m.project_thresholds(np.array([0.7, 0.6, 0.8]))
        array([0.6, 0.8])
        """
        thresholds = np.asarray(ram_thresholds, dtype=np.float64)
        if thresholds.shape != (self.num_ram_classes,):
            raise ValueError(f"expected RAM thresholds of shape ({self.num_ram_classes},), got {thresholds.shape}")
        out = np.full(len(self.labels), np.nan)
        for column, indices in enumerate(self.ram_indices):
            if indices:
                out[column] = thresholds[list(indices)].min()
        return out

    def ram_index_of(self, label: str) -> int | None:
        """Primary RAM index of a project label, ``None`` if it has no RAM tag.

        Looks the label up exactly first, then by :func:`normalize_tag`; a name that is not a
        project label at all raises ``KeyError`` (a typo should not pass as "unmapped").
        """
        column = self.column_of(label)
        indices = self.ram_indices[column]
        return indices[0] if indices else None

    def column_of(self, label: str) -> int:
        """Column of ``label`` in project arrays (exact name, else normalised name)."""
        exact, normalized = self._columns
        if label in exact:
            return exact[label]
        column = normalized.get(normalize_tag(label))
        if column is None:
            raise KeyError(f"{label!r} is not a project label; project labels: {list(self.labels)}")
        return column

    @cached_property
    def _columns(self) -> tuple[dict[str, int], dict[str, int]]:
        # Exports look labels up once per image and label; keep that O(1).
        exact = {label: column for column, label in enumerate(self.labels)}
        normalized: dict[str, int] = {}
        for column, label in enumerate(self.labels):
            normalized.setdefault(normalize_tag(label), column)
        return exact, normalized

    def report(self) -> dict[str, object]:
        """JSON-able account of the mapping, for logs, the UI and review files."""
        mapped = {
            label: {"ram_tags": [self.ram_names[i] for i in indices], "ram_indices": list(indices), "how": how}
            for label, indices, how in zip(self.labels, self.ram_indices, self.how, strict=True)
            if indices
        }
        return {
            "digest": self.digest,
            "mapped": mapped,
            "unmapped": list(self.unmapped),
            "unused_synonyms": list(self.unused_synonyms),
        }


class _RamIndex:
    """Lookups of RAM tag names by exact and normalised spelling (first index wins)."""

    def __init__(self, ram_names: Sequence[str], ram_names_zh: Sequence[str] | None) -> None:
        self.names = tuple(ram_names)
        self.exact: dict[str, int] = {}
        self.normalized: dict[str, int] = {}
        spellings = [self.names] + ([tuple(ram_names_zh)] if ram_names_zh is not None else [])
        for names in spellings:
            if len(names) != len(self.names):
                raise ValueError("ram_names_zh must have one entry per RAM tag")
            for index, name in enumerate(names):
                self.exact.setdefault(name, index)
                key = normalize_tag(name)
                if key:
                    self.normalized.setdefault(key, index)

    def match(self, name: str) -> tuple[int, MatchKind] | None:
        if name in self.exact:
            return self.exact[name], "exact"
        key = normalize_tag(name)
        if key in self.normalized:
            return self.normalized[key], "normalized"
        for variant in _number_variants(key):
            if variant in self.normalized:
                return self.normalized[variant], "plural"
        return None

    def close_matches(self, name: str) -> list[str]:
        return difflib.get_close_matches(normalize_tag(name), list(self.normalized), n=3, cutoff=0.75)


def build_label_mapping(
    labels: Sequence[str],
    ram_names: Sequence[str],
    *,
    synonyms: Mapping[str, str | Sequence[str]] | None = None,
    ram_names_zh: Sequence[str] | None = None,
) -> LabelMapping:
    """Map project ``labels`` onto RAM class indices.

    Order of precedence per label: an explicit synonym entry (the user said so), then the
    exact RAM name, then the :func:`normalize_tag` form, then a singular/plural form of the
    last word. Synonym keys are matched by normalised name; every synonym target must be a
    RAM tag (matched the same way) or a ``ValueError`` lists close spellings. Chinese RAM
    names, when given, are accepted wherever English ones are.

    >>> m = build_label_mapping(["Dog", "traffic_lights", "auto", "unicorn"],
    ...                         ["dog", "traffic light", "car"], synonyms={"auto": "car"})
    >>> m.ram_indices, m.how
    (((0,), (1,), (2,), ()), ('normalized', 'plural', 'synonym', 'unmapped'))
    >>> m.unmapped
    ('unicorn',)
    """
    labels = tuple(labels)
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"project labels must be non-empty strings, got {label!r}")
    duplicates = sorted(label for label, n in Counter(labels).items() if n > 1)  # linear: configs can be long
    if duplicates:
        raise ValueError(f"project labels must be unique; repeated: {duplicates}")
    ram = _RamIndex(ram_names, ram_names_zh)
    synonym_table = _resolve_synonyms(_clean_synonyms(synonyms or {}), ram)
    used: set[str] = set()
    indices: list[tuple[int, ...]] = []
    how: list[MatchKind] = []
    for label in labels:
        key = normalize_tag(label)
        if key in synonym_table:
            used.add(key)
            indices.append(synonym_table[key])
            how.append("synonym")
            continue
        found = ram.match(label)
        if found is None:
            indices.append(())
            how.append("unmapped")
        else:
            indices.append((found[0],))
            how.append(found[1])
    unused = tuple(sorted(key for key in synonym_table if key not in used))
    return LabelMapping(labels, tuple(indices), tuple(how), ram.names, unused)


def _resolve_synonyms(synonyms: dict[str, list[str]], ram: _RamIndex) -> dict[str, tuple[int, ...]]:
    table: dict[str, tuple[int, ...]] = {}
    for label, targets in synonyms.items():
        resolved: list[int] = []
        for target in targets:
            found = ram.match(target)
            if found is None:
                hint = ram.close_matches(target)
                suggestion = f"; did you mean {hint}?" if hint else ""
                raise ValueError(f"synonym for {label!r} names {target!r}, which is not a RAM tag{suggestion}")
            if found[0] not in resolved:
                resolved.append(found[0])
        key = normalize_tag(label)
        if key in table and table[key] != tuple(resolved):
            raise ValueError(f"synonyms give {label!r} two different meanings (labels are compared by normalised name)")
        table[key] = tuple(resolved)
    return table
