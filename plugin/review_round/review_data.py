"""The reviewed labels of a dataset as training data: finetune records and a label matrix.

Both fine-tuning and threshold tuning learn from the same facts: for each reviewed image,
the classes the reviewer chose (positives) and the classes the reviewer was offered but did
not choose (known negatives); every other RAM class is unknown. The offered classes are the
Label Studio project's choices when the field was loaded from a review round, else the
labels that occur in the field.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fiftyone.core.collections as foc
import numpy as np

from plugin.errors import PluginInputError
from plugin.fo_convert import distinct_labels, present_labels
from plugin.jobs import runs
from plugin.review_round.params import review_state_fields, reviews_run_key
from ram_model.review import (
    reviewed_label_matrix,
    FinetuneRecord,
    LabelMapping,
    build_finetune_records,
    build_label_mapping,
    load_synonyms,
    write_finetune_json,
)

__all__ = ["ReviewedData", "offered_classes", "reviewed_data", "write_training_json"]


@dataclass
class ReviewedData:
    """Reviewed samples with an image on disk, in collection order."""

    sample_ids: list[str]
    paths: list[str]
    labels: list[list[str]]
    mapping: LabelMapping
    offered: list[str]

    @property
    def offered_ids(self) -> list[int]:
        """Primary RAM index of every offered class that maps to one (the known negatives' pool)."""
        return sorted({self.mapping.ram_index_of(name) for name in self.offered
                       if name in self.mapping.labels and self.mapping.ram_indices[self.mapping.labels.index(name)]})

    def label_matrix(self, num_classes: int) -> np.ndarray:
        """(N, K) int8: 1 chosen, 0 offered and not chosen, -1 unknown (for `tune_thresholds`)."""
        offered = self.offered_ids
        chosen = [[self.mapping.ram_index_of(name) for name in names
                   if name in self.mapping.labels and self.mapping.ram_indices[self.mapping.labels.index(name)]]
                  for names in self.labels]
        return reviewed_label_matrix(chosen, [offered] * len(chosen), num_classes)

    def records(self) -> list[FinetuneRecord]:
        """Finetune records (images with at least one mapped label; the core skips the rest)."""
        records, _ = build_finetune_records(zip(self.paths, self.labels, [None] * len(self.paths)), self.mapping)
        offered = self.offered_ids
        if "reviewed_label_id" in {f.name for f in dataclasses.fields(FinetuneRecord)}:
            records = [dataclasses.replace(r, reviewed_label_id=sorted(set(offered) | set(r.union_label_id)))
                       for r in records]
        return records


def offered_classes(collection: foc.SampleCollection, reviewed_field: str) -> list[str]:
    """The classes reviewers could choose: the project's choices if Load reviews wrote the field."""
    dataset = collection._root_dataset
    labels = set(distinct_labels(dataset, reviewed_field))
    loaded = runs.read_run_settings(dataset, reviews_run_key(reviewed_field))
    if loaded:
        project = runs.read_run_settings(dataset, review_state_fields(loaded["label_field"]).project_run) or {}
        labels |= set(project.get("classes") or [])
    return sorted(labels)


def reviewed_data(collection: foc.SampleCollection, reviewed_field: str, vocab_names: Sequence[str], *,
                  synonyms: str | None = None) -> ReviewedData:
    present = present_labels(collection, reviewed_field)
    ids, paths = collection.values(["id", "filepath"])
    keep = [i for i, names in enumerate(present) if names is not None and os.path.isfile(paths[i])]
    if not keep:
        raise PluginInputError(f"No sample of the view has reviewed labels in {reviewed_field!r} and an image "
                               "on disk; load reviews first")
    offered = offered_classes(collection, reviewed_field)
    mapping = build_label_mapping(offered, list(vocab_names),
                                  synonyms=load_synonyms(synonyms) if synonyms else None)
    if not any(mapping.ram_indices):
        raise PluginInputError(f"None of the labels of {reviewed_field!r} maps to a RAM tag: {offered[:10]}")
    return ReviewedData([ids[i] for i in keep], [paths[i] for i in keep], [list(present[i] or []) for i in keep],
                        mapping, offered)


def write_training_json(records: Sequence[FinetuneRecord], folder: Path, num_classes: int) -> tuple[Path, str]:
    """Write the finetune JSON (paths relative to the images' common folder); returns (path, image root).

    The file name carries the content's digest, so the same reviews give the same file (and
    the same fine-tuning run folder), and changed reviews a new one.
    """
    if not records:
        raise PluginInputError("No reviewed image has a label that maps to a RAM tag; nothing to train on")
    root = os.path.commonpath([os.path.dirname(r.image_path) for r in records])
    digest = hashlib.sha256(json.dumps([r.to_json() for r in records], sort_keys=True).encode()).hexdigest()[:12]
    path = folder / f"reviewed-{digest}.json"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_finetune_json(records, path, image_root=root, num_classes=num_classes)
    return path, root
