"""Fine-tuning RAM / RAM++ on reviewed labels (issue 9; API in docs/seams.md, guide in docs/finetune.md).

`finetune(FinetuneConfig(...))` trains from the official finetune JSON our export writes,
with the official tagging loss and augmentation, and writes a self-contained model that
the engine loads with no other flag, tuned thresholds, and base-vs-new validation metrics.
"""
from .config import DEFAULT_LR, FinetuneConfig, FinetuneError, FinetuneResult
from .loss import asymmetric_loss
from .metrics import average_precision, tagging_metrics
from .trainer import finetune

__all__ = ["DEFAULT_LR", "FinetuneConfig", "FinetuneError", "FinetuneResult", "finetune",
           "asymmetric_loss", "average_precision", "tagging_metrics"]
