"""What a fine-tuning run is asked to do (`FinetuneConfig`) and what it leaves behind (`FinetuneResult`)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ..model.config import EngineConfig
from ..option import OptionSpec, declared_options, option
from ..errors import RamModelError

__all__ = ["FinetuneConfig", "FinetuneResult", "FinetuneError", "DEFAULT_LR", "RECIPE_FIELDS", "TRAINING_OPTIONS"]

# Per-mode peak learning rates. Head: the best of the sweep in bench/sweep_finetune_lr.py on
# the tiny synthetic task (docs/finetune.md has the table: 1e-4 too slow, 3e-4 and 1e-3 best,
# 3e-3 unstable). Full: the same sweep puts the best rate for a *random* backbone at 3e-4 and
# divergence at 1e-3; a pretrained Swin-L has features to lose, so we stay 10x below that,
# within an order of magnitude of the official recipe's 5e-6 (which trains on COCO-sized data,
# where many more steps make up for the smaller rate).
DEFAULT_LR: dict[str, float] = {"head": 3e-4, "full": 3e-5}


class FinetuneError(RamModelError):
    """A fine-tuning run that cannot start or was stopped; the message says what to do."""


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run; see docs/seams.md ("Fine-tuning, registry and per-project thresholds").

    The fields made with `option(...)` are the training options users set: `ram-annotate
    finetune`'s flags, the server's `--train-param` and training routes (`backend.training.params`),
    and the FiftyOne fine-tune form and job all derive from them (`TRAINING_OPTIONS`).
    """

    data: tuple[str, ...]
    base: EngineConfig
    output: str
    image_root: str | None = None
    mode: Literal["head", "full"] = option(
        "head", "head: train the projections, tagging head and fc; full: every weight but label_embed", str,
        choices=("head", "full"), label="What to train",
    )
    unfreeze_stages: int = option(0, "head mode: also train the last N Swin stages", int, low=0, high=4,
                                  metavar="N", in_form=False)
    epochs: int = option(2, "passes over the training images", int, low=1, high=1000, label="Epochs")
    lr: float | None = option(None, "peak learning rate (default: 3e-4 head, 3e-5 full)", float, low=0.0, high=1.0,
                              label="Learning rate (optional)")
    batch_size: int = option(8, "training images per step", int, low=1, high=1024, label="Training batch size",
                             key="finetune_batch_size")  # beside the model's own --batch-size in a form
    grad_accum: int = option(1, "optimizer step every N batches", int, low=1, high=1024, metavar="N", in_form=False)
    weight_decay: float = option(0.05, "AdamW weight decay", float, low=0.0, in_form=False)
    val_split: float = option(0.1, "held-out fraction for thresholds and metrics", float, low=0.0, high=1.0,
                              in_form=False)
    seed: int = option(0, "seed of the split, the order and the augmentation", int, low=0, label="Seed")
    negatives: Literal["reviewed", "all"] = option(
        "reviewed", "reviewed: only the project's reviewed classes are known negatives; all: every absent class "
        "is a negative", str, choices=("reviewed", "all"), in_form=False,
    )
    new_classes: tuple[str, ...] = option((), "comma-separated names of classes to add (ids K, K+1, ... in the "
                                              "data)", list, metavar="A,B", in_form=False)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    grad_checkpointing: bool = option(False, "recompute activations: less memory, ~30% slower", bool, in_form=False)
    augment: bool = option(True, "no crop / flip / RandAugment", bool, negated_as="no_augment", in_form=False)
    num_workers: int = option(2, "image decoding processes (0: in the main process)", int, low=0, high=64,
                              in_form=False)
    official_layout: bool = option(False, "also write model.pth as {'model': state_dict}", bool, in_form=False)
    min_lr: float = option(0.0, "learning rate at the end of the cosine schedule", float, low=0.0, in_form=False)
    # New classes' label_embed rows start from the mean of the existing rows, i.e. from no
    # knowledge at all, while everything else starts pretrained: they learn this much faster.
    new_class_lr_scale: float = option(10.0, "learning-rate multiple of the new classes' label rows", float,
                                       low=0.0, in_form=False)
    # None: `negative_focusing` decides from the negatives policy
    gamma_neg: float | None = option(None, "the loss's negative focusing (default: 1 for reviewed negatives, 7 "
                                           "for all)", float, low=0.0, in_form=False)

    def __post_init__(self) -> None:
        if isinstance(self.data, (str, Path)):
            object.__setattr__(self, "data", (str(self.data),))
        object.__setattr__(self, "data", tuple(str(d) for d in self.data))
        object.__setattr__(self, "new_classes", tuple(str(n).strip() for n in self.new_classes if str(n).strip()))
        problems = []
        if not self.data:
            problems.append("at least one data file is needed")
        if self.mode not in ("head", "full"):
            problems.append(f"mode must be 'head' or 'full', not {self.mode!r}")
        if self.negatives not in ("reviewed", "all"):
            problems.append(f"negatives must be 'reviewed' or 'all', not {self.negatives!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            problems.append(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            problems.append("epochs, batch_size and grad_accum must be >= 1")
        if self.unfreeze_stages < 0:
            problems.append("unfreeze_stages must be >= 0")
        if self.mode == "full" and self.unfreeze_stages:
            problems.append("unfreeze_stages applies to mode 'head' only (mode 'full' trains every stage)")
        if not 0.0 < self.val_split < 1.0:
            problems.append(f"val_split must lie in (0, 1): thresholds and metrics need a held-out split, got {self.val_split}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a finite number > 0, got {self.lr}")
        for name in ("weight_decay", "min_lr", "new_class_lr_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a finite number >= 0, got {value}")
        if self.num_workers < 0:
            problems.append("num_workers must be >= 0")
        if len(set(n.lower() for n in self.new_classes)) != len(self.new_classes):
            problems.append(f"new_classes lists a name twice: {list(self.new_classes)}")
        if problems:
            raise FinetuneError("; ".join(problems))

    @property
    def negative_focusing(self) -> float:
        """The asymmetric loss's gamma_neg. The official 7 suits "all" negatives (thousands of
        easy absent classes, each near zero). Under "reviewed" the negatives are the few
        tags a person said are absent, often ones the model scored 0.2-0.5: at gamma 7 their
        weight is (p - clip)^7, about 1e-4, so the positives' pull on the shared head raises
        them unopposed (a removed tag went UP after training). Gamma 1 keeps them in the loss."""
        if self.gamma_neg is not None:
            return self.gamma_neg
        return 7.0 if self.negatives == "all" else 1.0

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.mode]

    def recipe(self) -> dict[str, Any]:
        """The settings that decide the weights (what a resumed run must share with the first)."""
        out = {name: getattr(self, name) for name in RECIPE_FIELDS}
        out["lr"] = self.learning_rate
        out["gamma_neg"] = self.negative_focusing
        out["new_classes"] = list(self.new_classes)
        return out

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "base"}
        data["data"] = list(self.data)
        data["new_classes"] = list(self.new_classes)
        data["base"] = asdict(self.base)
        return data


RECIPE_FIELDS = ("mode", "unfreeze_stages", "epochs", "lr", "batch_size", "grad_accum", "weight_decay",
                 "val_split", "seed", "negatives", "new_classes", "augment", "min_lr", "new_class_lr_scale")


TRAINING_OPTIONS: tuple[OptionSpec, ...] = declared_options(FinetuneConfig)


@dataclass
class FinetuneResult:
    output_dir: Path
    checkpoint: Path
    thresholds: Path
    metrics: dict[str, Any]
    model_version: str
    card: dict[str, Any]
    official_checkpoint: Path | None = None
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
