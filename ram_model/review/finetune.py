"""Turning reviewed labels into RAM's official finetuning data.

The official trainer (recognize-anything ``finetune.py`` with ``ram/data/dataset.py``)
reads a JSON list of entries::

    {"image_path": "<relative to image_path_root>",
     "caption": ["<text>", ...],           # one is drawn per step
     "union_label_id": [<RAM class id>, ...],   # the tagging target
     "parse_label_id": [[<RAM class id>, ...], ...]}  # one list per caption

It indexes ``caption`` and ``parse_label_id`` with the same random position, so both must
have the same non-zero length, and it one-hot-encodes the ids into ``class_num`` (4,585)
slots, so every id must be in range. :func:`read_finetune_json` checks exactly these facts
up front and names the offending entry, instead of the trainer failing hours in.

Without a caption, the export writes one synthetic caption listing the English RAM names
of the image's tags (``"dog, grass, frisbee"``), and its parse ids are all of the image's
tags (every tag is named in that caption). With captions, a caption's parse ids are the
image's tags whose RAM name (or its plural) appears in that caption as whole words.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from .atomic_io import atomic_write_json
from .vocabulary import LabelMapping, normalize_tag

__all__ = [
    "FinetuneRecord",
    "ExportReport",
    "FinetuneFormatError",
    "UnmappedLabelError",
    "build_finetune_records",
    "write_finetune_json",
    "read_finetune_json",
]


class FinetuneFormatError(ValueError):
    """A finetune entry the official trainer would reject or misread."""

    def __init__(self, message: str, *, index: int | None = None, image_path: str | None = None) -> None:
        where = (
            "" if index is None else f"entry {index}" + (f" (image_path={image_path!r})" if image_path else "") + ": "
        )
        super().__init__(where + message)
        self.index = index
        self.image_path = image_path


class UnmappedLabelError(ValueError):
    """Labels that have no RAM class, raised when the export was asked to fail on them."""

    def __init__(self, labels: Sequence[str], examples: Sequence[str]) -> None:
        super().__init__(
            f"{len(labels)} label(s) have no RAM tag and cannot be exported as RAM ids: {list(labels)} "
            f"(first images: {list(examples)}). Add them to the synonym mapping, or export with on_unmapped='skip'."
        )
        self.labels = tuple(labels)
        self.examples = tuple(examples)


@dataclass(frozen=True)
class FinetuneRecord:
    """One entry of the official finetune JSON."""

    image_path: str
    caption: list[str]
    union_label_id: list[int]
    parse_label_id: list[list[int]]
    # The classes a reviewer could choose for this image (see docs/seams.md): the known
    # negatives are these minus the positives. Optional; the official trainer ignores it.
    reviewed_label_id: list[int] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        if self.reviewed_label_id is None:
            del data["reviewed_label_id"]
        return data


@dataclass
class ExportReport:
    """What the export left out and why, so nothing disappears silently."""

    exported: int = 0
    skipped_labels: dict[str, int] = field(default_factory=dict)  # unmapped label -> occurrences dropped
    skipped_images: list[tuple[str, str]] = field(default_factory=list)  # (image_path, reason)
    synthetic_captions: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "exported": self.exported,
            "skipped_labels": dict(self.skipped_labels),
            "skipped_images": [{"image_path": path, "reason": reason} for path, reason in self.skipped_images],
            "synthetic_captions": self.synthetic_captions,
        }


def build_finetune_records(
    items: Iterable[tuple[str, Sequence[str], Sequence[str] | None]],
    mapping: LabelMapping,
    *,
    on_unmapped: Literal["skip", "fail"] = "skip",
    new_classes: Sequence[str] = (),
) -> tuple[list[FinetuneRecord], ExportReport]:
    """Build finetune records from ``(image_path, final project labels, captions or None)``.

    Each label becomes its primary RAM id (see :class:`LabelMapping`). A label without RAM
    tag, or a name that is not a project label, is dropped and counted with
    ``on_unmapped="skip"``, or raises :class:`UnmappedLabelError` (after looking at every
    item, so the message lists them all) with ``"fail"``. An image left with no tag is
    skipped and reported: the trainer cannot learn from an empty target.

    ``new_classes`` names project labels that have no RAM tag but should be learned as new
    classes (``ram_model.finetune`` with the same ``new_classes``): label ``new_classes[i]``
    becomes id ``K + i`` (K = ``mapping.num_ram_classes``), matched like tag names
    (case, spaces and dashes ignored). Read such a file back with
    ``read_finetune_json(num_classes=K + len(new_classes))``.

    >>> from ram_model.review import build_label_mapping
    >>> m = build_label_mapping(["Dog", "Grass", "unicorn"], ["dog", "cat", "grass"])
    >>> records, report = build_finetune_records([("a.jpg", ["Dog", "Grass", "unicorn"], None)], m)
    >>> records[0]
    FinetuneRecord(image_path='a.jpg', caption=['dog, grass'], union_label_id=[0, 2], parse_label_id=[[0, 2]])
    >>> report.skipped_labels
    {'unicorn': 1}
    >>> records, _ = build_finetune_records([("a.jpg", ["Dog", "unicorn"], None)], m, new_classes=["unicorn"])
    >>> records[0].union_label_id, records[0].caption
    ([0, 3], ['dog, unicorn'])
    """
    if on_unmapped not in ("skip", "fail"):
        raise ValueError(f"on_unmapped must be 'skip' or 'fail', got {on_unmapped!r}")
    new_ids = _new_class_ids(new_classes, mapping)
    names = list(mapping.ram_names) + [str(name) for name in new_classes]
    report = ExportReport()
    records: list[FinetuneRecord] = []
    unmapped_examples: list[str] = []
    for image_path, labels, captions in items:
        if not isinstance(image_path, str) or not image_path:
            raise ValueError(f"image_path must be a non-empty string, got {image_path!r}")
        if isinstance(labels, str):
            raise TypeError(f"labels of {image_path!r} must be a sequence of names, not one string")
        ids: list[int] = []
        for label in labels:
            index = _ram_index_or_none(mapping, label)
            if index is None:
                index = new_ids.get(normalize_tag(label))
            if index is None:
                report.skipped_labels[label] = report.skipped_labels.get(label, 0) + 1
                if image_path not in unmapped_examples and len(unmapped_examples) < 5:
                    unmapped_examples.append(image_path)
            elif index not in ids:
                ids.append(index)
        if not ids:
            report.skipped_images.append((image_path, "no label with a RAM tag"))
            continue
        ids.sort()
        texts = [text for text in (captions or []) if isinstance(text, str) and text.strip()]
        if texts:
            parse = [_tags_named_in(text, ids, names) for text in texts]
        else:
            texts = [", ".join(names[i] for i in ids)]
            parse = [list(ids)]
            report.synthetic_captions += 1
        records.append(FinetuneRecord(image_path, texts, ids, parse))
    if on_unmapped == "fail" and report.skipped_labels:
        raise UnmappedLabelError(sorted(report.skipped_labels), unmapped_examples)
    report.exported = len(records)
    return records, report


def _new_class_ids(new_classes: Sequence[str], mapping: LabelMapping) -> dict[str, int]:
    """Normalised new-class name -> id K + i; a name that is already a RAM tag is an error."""
    if isinstance(new_classes, str):
        raise TypeError("new_classes must be a sequence of names, not one string")
    known = {normalize_tag(name) for name in mapping.ram_names}
    ids: dict[str, int] = {}
    for offset, name in enumerate(new_classes):
        key = normalize_tag(name)
        if not key:
            raise ValueError(f"new class name {name!r} is empty")
        if key in known:
            raise ValueError(f"new class {name!r} is already a RAM tag; map the label to it instead")
        if key in ids:
            raise ValueError(f"new class {name!r} is listed twice")
        ids[key] = mapping.num_ram_classes + offset
    return ids


def _ram_index_or_none(mapping: LabelMapping, label: str) -> int | None:
    try:
        return mapping.ram_index_of(label)
    except KeyError:
        return None


_PUNCTUATION = re.compile(r"[^\w\s-]")


def _tags_named_in(caption: str, ids: Sequence[int], ram_names: Sequence[str]) -> list[int]:
    words = " " + normalize_tag(_PUNCTUATION.sub(" ", caption)) + " "
    found = []
    for index in ids:
        name = normalize_tag(ram_names[index])
        if any(f" {form} " in words for form in (name, name + "s", name + "es")):
            found.append(index)
    return found


def write_finetune_json(
    records: Iterable[FinetuneRecord],
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
) -> Path:
    """Validate ``records`` and write them atomically as the official finetune JSON.

    With ``image_root``, absolute image paths inside it are made relative to it (the
    trainer joins them to ``image_path_root``), paths outside it are an error, and every
    image must exist. ``num_classes`` (e.g. ``len(engine.vocab)``) also checks id ranges.
    Nothing is written when any record is invalid.
    """
    root = Path(image_root).resolve() if image_root is not None else None
    entries = []
    for index, record in enumerate(records):
        entry = record.to_json()
        if root is not None and os.path.isabs(record.image_path):
            try:
                entry["image_path"] = Path(record.image_path).resolve().relative_to(root).as_posix()
            except ValueError:
                raise FinetuneFormatError(
                    f"image is outside image_root {root}", index=index, image_path=record.image_path
                ) from None
        _check_entry(entry, index, num_classes=num_classes, root=root)
        entries.append(entry)
    return atomic_write_json(path, entries, indent=None)


def read_finetune_json(
    path: str | os.PathLike[str],
    *,
    num_classes: int,
    image_root: str | os.PathLike[str] | None = None,
    check_files: bool = True,
) -> list[FinetuneRecord]:
    """Read and validate a finetune JSON; raise :class:`FinetuneFormatError` naming the bad entry.

    Checks: a JSON list of objects; ``image_path`` a non-empty string (and, with
    ``check_files``, an existing file under ``image_root``, by default the JSON's folder);
    ``caption`` a non-empty list of strings; ``union_label_id`` a non-empty list of ids in
    ``[0, num_classes)``; ``parse_label_id`` one list of such ids per caption; the optional
    ``reviewed_label_id`` a list of such ids. Files with new classes (ids ``K + i``, see
    :func:`build_finetune_records`) are read with ``num_classes=K + len(new_classes)``.
    """
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"finetune file not found: {source}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FinetuneFormatError(f"{source} is not valid JSON: {exc}") from exc
    except RecursionError:  # a hostile file nested deeper than Python's parser recurses
        raise FinetuneFormatError(f"{source} is nested too deeply to be a finetune file") from None
    if not isinstance(data, list):
        raise FinetuneFormatError(f"{source} must hold a JSON list of entries, got {type(data).__name__}")
    root = (Path(image_root) if image_root is not None else source.parent).resolve() if check_files else None
    records = []
    for index, entry in enumerate(data):
        _check_entry(entry, index, num_classes=num_classes, root=root)
        records.append(
            FinetuneRecord(
                entry["image_path"],
                list(entry["caption"]),
                list(entry["union_label_id"]),
                [list(ids) for ids in entry["parse_label_id"]],
                list(entry["reviewed_label_id"]) if entry.get("reviewed_label_id") is not None else None,
            )
        )
    return records


def _check_entry(entry: object, index: int, *, num_classes: int | None, root: Path | None) -> None:
    if not isinstance(entry, dict):
        raise FinetuneFormatError(f"must be an object, got {type(entry).__name__}", index=index)
    image_path = entry.get("image_path")
    if not isinstance(image_path, str) or not image_path.strip():
        raise FinetuneFormatError(f"image_path must be a non-empty string, got {image_path!r}", index=index)

    def fail(message: str) -> FinetuneFormatError:
        return FinetuneFormatError(message, index=index, image_path=image_path)

    missing = [key for key in ("caption", "union_label_id", "parse_label_id") if key not in entry]
    if missing:
        raise fail(f"missing key(s) {missing}")
    captions = entry["caption"]
    if not isinstance(captions, list) or not captions:
        raise fail(f"caption must be a non-empty list of strings, got {captions!r}")
    if not all(isinstance(text, str) for text in captions):
        raise fail("every caption must be a string")
    union = entry["union_label_id"]
    _check_ids(union, "union_label_id", num_classes, fail)
    if not union and not entry.get("reviewed_label_id"):
        raise fail("union_label_id is empty and no reviewed_label_id names a known-absent tag: "
                   "the entry gives the trainer nothing to learn")
    parse = entry["parse_label_id"]
    if not isinstance(parse, list) or len(parse) != len(captions):
        raise fail(f"parse_label_id must hold one id list per caption ({len(captions)}), got {parse!r}")
    for position, ids in enumerate(parse):
        _check_ids(ids, f"parse_label_id[{position}]", num_classes, fail)
    if entry.get("reviewed_label_id") is not None:
        _check_ids(entry["reviewed_label_id"], "reviewed_label_id", num_classes, fail)
    if root is not None:
        candidate = Path(image_path) if os.path.isabs(image_path) else root / image_path
        if not candidate.is_file():
            raise fail(f"image file not found: {candidate}")


def _check_ids(ids: object, name: str, num_classes: int | None, fail) -> None:  # type: ignore[no-untyped-def]
    if not isinstance(ids, list):
        raise fail(f"{name} must be a list of class ids, got {ids!r}")
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"{name} holds {value!r}; class ids must be integers")
        if value < 0 or (num_classes is not None and value >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else "non-negative"
            raise fail(f"{name} holds unknown class id {value} (must be {bound})")
