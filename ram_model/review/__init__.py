"""Review core: where existing labels are probably wrong, what to review next, and how the
fixes become RAM finetuning data.

NumPy-only and free of any Label Studio / FiftyOne / web import, so the backend and the
plugin call the same code. The method is documented in ``docs/review.md``.

* :mod:`.vocabulary`: project labels -> RAM class indices (:func:`build_label_mapping`).
* :mod:`.disagreement`: per-tag *missing* / *doubtful* flags and per-sample scores under a
  tag-flip noise model (:func:`find_disagreements`), ranked by :func:`rank_for_review`.
* :mod:`.selection`: active-learning batches (:func:`select_review_batch`).
* :mod:`.finetune`: the official finetune JSON, written atomically and validated on read.
* :mod:`.thresholds_tuning`: per-class thresholds fitted to reviewed labels (:func:`tune_thresholds`).
* :mod:`.atomic_io`: the one atomic file writer.
"""

from .atomic_io import atomic_write_json, atomic_write_text
from .disagreement import (
    ClassSummary,
    DisagreementReport,
    TagIssue,
    aggregate_sample_scores,
    calibrate_per_class,
    centred_probabilities,
    estimate_noise_rate,
    estimate_thresholds,
    expected_f1_cut,
    find_disagreements,
    flip_posteriors,
    tag_error_scores,
)
from .finetune import (
    ExportReport,
    FinetuneFormatError,
    FinetuneRecord,
    UnmappedLabelError,
    build_finetune_records,
    read_finetune_json,
    write_finetune_json,
)
from .ranking import rank_for_review
from .selection import k_center_greedy, select_review_batch, uncertainty_scores
from .thresholds_tuning import ClassThreshold, TunedThresholds, TuningOptions, reviewed_label_matrix, tune_thresholds
from .vocabulary import LabelMapping, MatchKind, build_label_mapping, load_synonyms, normalize_tag

__all__ = [
    "ClassSummary",
    "ClassThreshold",
    "DisagreementReport",
    "ExportReport",
    "FinetuneFormatError",
    "FinetuneRecord",
    "LabelMapping",
    "MatchKind",
    "TagIssue",
    "TunedThresholds",
    "TuningOptions",
    "UnmappedLabelError",
    "aggregate_sample_scores",
    "atomic_write_json",
    "atomic_write_text",
    "build_finetune_records",
    "build_label_mapping",
    "calibrate_per_class",
    "centred_probabilities",
    "estimate_noise_rate",
    "estimate_thresholds",
    "expected_f1_cut",
    "find_disagreements",
    "flip_posteriors",
    "k_center_greedy",
    "load_synonyms",
    "normalize_tag",
    "rank_for_review",
    "read_finetune_json",
    "select_review_batch",
    "tag_error_scores",
    "reviewed_label_matrix",
    "tune_thresholds",
    "uncertainty_scores",
    "write_finetune_json",
]
