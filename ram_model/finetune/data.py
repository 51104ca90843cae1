"""Finetune JSON files -> examples with targets and known-class masks, a seeded split, a Dataset.

The negatives policy lives here. RAM's vocabulary has 4,585 classes but a project reviews
only its own labels: a RAM tag outside that label set that is absent from an image's
labels was never looked at, so it is *unknown*, not *wrong*. Under `negatives="reviewed"`
only the reviewed classes (`reviewed_label_id`, else the union of every id in the file)
count as known negatives; the other classes add no loss. `"all"` treats every absent class
as negative (right only when the labels are exhaustive over RAM's vocabulary).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ImageLoadError
from ..inference.images import load_image
from ..model.preprocess import to_model_input
from ..review.finetune import FinetuneFormatError, read_finetune_json
from ..review.thresholds_tuning import reviewed_label_matrix
from .augment import TrainAugment
from .config import FinetuneError

__all__ = ["Example", "DataFile", "load_examples", "split_examples", "TaggingDataset", "label_matrix"]


@dataclass(frozen=True)
class Example:
    image: Path
    positives: tuple[int, ...]
    reviewed: tuple[int, ...]  # known classes (positives included) under the "reviewed" policy


@dataclass(frozen=True)
class DataFile:
    path: Path
    sha256: str
    entries: int


def load_examples(files: Sequence[str | Path], *, num_classes: int, image_root: str | Path | None
                  ) -> tuple[list[Example], list[DataFile]]:
    """Read and validate every file (all of them before training starts) and combine them."""
    examples: list[Example] = []
    described: list[DataFile] = []
    for name in files:
        path = Path(name)
        try:
            records = read_finetune_json(path, num_classes=num_classes, image_root=image_root)
        except (FinetuneFormatError, FileNotFoundError) as e:
            raise FinetuneError(f"{path}: {e}") from e
        root = Path(image_root) if image_root is not None else path.parent
        file_union = sorted({i for r in records for i in r.union_label_id})
        for r in records:
            reviewed = set(r.reviewed_label_id if r.reviewed_label_id is not None else file_union)
            reviewed.update(r.union_label_id)
            image = Path(r.image_path)
            examples.append(Example(image if image.is_absolute() else root / image,
                                    tuple(sorted(set(r.union_label_id))), tuple(sorted(reviewed))))
        described.append(DataFile(path, hashlib.sha256(path.read_bytes()).hexdigest(), len(records)))
    if not examples:
        raise FinetuneError("the data files hold no entries")
    return examples, described


def split_examples(examples: Sequence[Example], val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train / validation indices; both non-empty."""
    n = len(examples)
    n_val = int(round(n * val_split))
    n_val = min(max(n_val, 1), n - 1)
    if n < 2:
        raise FinetuneError(f"{n} example(s): need at least 2 to hold out a validation split")
    order = np.random.default_rng(seed).permutation(n)
    return sorted(int(i) for i in order[n_val:]), sorted(int(i) for i in order[:n_val])


def label_matrix(examples: Sequence[Example], num_classes: int, negatives: str) -> np.ndarray:
    """(N, K) int8: 1 positive, 0 known negative, -1 unknown (contributes no loss, no metric)."""
    reviewed = [() if negatives == "all" else ex.reviewed for ex in examples]
    return reviewed_label_matrix([ex.positives for ex in examples], reviewed, num_classes,
                                 unknown=0 if negatives == "all" else -1)


class TaggingDataset(Dataset):
    """(image tensor, row index) pairs; augmentation draws from a generator seeded by (seed, epoch, index),

    so a resumed run, or one with another number of workers, sees the same images.
    """

    def __init__(self, examples: Sequence[Example], indices: Sequence[int], image_size: int,
                 *, augment: bool, seed: int) -> None:
        self.examples = examples
        self.indices = list(indices)
        self.image_size = image_size
        self.augment = TrainAugment(image_size) if augment else None
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        index = self.indices[position]
        path = self.examples[index].image
        try:
            img = load_image(path)
        except ImageLoadError as e:
            raise FinetuneError(f"cannot train on {path}: {e}. Fix or remove the entry, then re-run "
                                "the same command to resume.") from e
        if self.augment is None:
            return to_model_input(img, self.image_size), index
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return self.augment(img, rng), index
