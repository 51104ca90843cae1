"""Tune per-class thresholds on reviewed labels (`ram_model.review.tune_thresholds`).

The model runs over the reviewed images once; chosen classes are positives, offered but
unchosen ones known negatives, everything else unknown (see `plugin.review_round.review_data`).
The thresholds file is written atomically under a name derived from the model version and
the reviews, so a rerun writes the same file; re-tagging with it is optional.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone.core.collections as foc
import numpy as np

from plugin.models.engine_cache import get_tagger
from plugin.errors import PluginInputError
from plugin.review_round.finetune import retag
from plugin.review_round.review_data import reviewed_data
from plugin.params import ModelParams
from plugin.review_round.params import ThresholdJobParams, work_dir
from ram_model.review import read_finetune_json, tune_thresholds
from ram_model.progress import ProgressFn
from plugin.jobs import JobResult

__all__ = ["ThresholdJobResult", "tune_thresholds_on_reviews"]

_CHUNK = 32


@dataclass
class ThresholdJobResult(JobResult):
    thresholds: str
    report: str
    images: int
    failed: int = 0
    tuned: int = 0
    shrunk: int = 0
    kept: int = 0
    why_none: str | None = None  # when nothing was tuned, why (too few reviews, nothing reviewed, ...)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    retag: dict[str, Any] | None = None


def _inputs(collection: foc.SampleCollection, params: ThresholdJobParams, names: list[str]
            ) -> tuple[list[str], np.ndarray]:
    """Image paths and their (N, K) reviewed label matrix, from the field or a finetune export."""
    if params.reviewed_field:
        data = reviewed_data(collection, params.reviewed_field, names, synonyms=params.synonyms)
        return data.paths, data.label_matrix(len(names))
    from ram_model.cli.thresholds import reviewed_label_matrix

    source = Path(params.data).expanduser()  # type: ignore[arg-type]
    root = Path(params.image_root).expanduser() if params.image_root else source.parent
    records = read_finetune_json(source, num_classes=len(names), image_root=root)
    paths = [r.image_path if Path(r.image_path).is_absolute() else str(root / r.image_path) for r in records]
    return paths, reviewed_label_matrix([records], len(names))


def _micro_f1(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> float | None:
    """Micro-F1 over the reviewed cells (labels >= 0) at the given cuts (prob > threshold fires)."""
    known = labels >= 0
    fired = probs.astype(np.float32) > thresholds.astype(np.float32)[None, :]
    tp = int((fired & (labels == 1) & known).sum())
    fp = int((fired & (labels == 0) & known).sum())
    fn = int((~fired & (labels == 1) & known).sum())
    return None if tp + fp + fn == 0 else round(2 * tp / (2 * tp + fp + fn), 4)


def tune_thresholds_on_reviews(collection: foc.SampleCollection, params: ThresholdJobParams, model: ModelParams, *,
                               progress: ProgressFn | None = None) -> ThresholdJobResult:
    tagger = get_tagger(model)
    names = list(tagger.vocab.names)
    paths, labels = _inputs(collection, params, names)
    probs = np.full((len(paths), len(names)), np.nan, dtype=np.float32)
    failed = 0
    with closing(tagger.predict_iter(paths)) as stream:
        for row, prediction in enumerate(stream):
            if prediction.ok and prediction.probs is not None:
                probs[row] = prediction.probs
            else:
                failed += 1
            if progress is not None and ((row + 1) % _CHUNK == 0 or row + 1 == len(paths)):
                progress(row + 1, len(paths))
    ok = ~np.isnan(probs).any(axis=1)
    if not ok.any():
        raise PluginInputError("None of the reviewed images could be read; nothing to tune on")
    prior = np.asarray(model.options.threshold_policy().resolve(tagger.vocab), dtype=np.float32)
    try:
        tuned = tune_thresholds(labels[ok], probs[ok], prior=prior, **dataclasses.asdict(params.tuning))
    except ValueError as e:
        raise PluginInputError(str(e)) from None

    digest = hashlib.sha256(labels[ok].tobytes() + tagger.model_version.encode()
                            + repr(dataclasses.astuple(params.tuning)).encode()).hexdigest()[:12]
    folder = Path(params.output_dir).expanduser() if params.output_dir else work_dir() / "thresholds"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"thresholds-{digest}.txt"
    tuned.write(path, names=names)
    sources = Counter(entry.source for entry in tuned.per_class)
    result = ThresholdJobResult(thresholds=str(path), report=str(path) + ".report.json", images=int(ok.sum()),
                                failed=failed, tuned=sources["tuned"], shrunk=sources["shrunk"],
                                kept=sources["prior"], why_none=tuned.why_none())
    result.changes = [{"tag": names[c.index], "before": round(c.prior, 4), "after": round(c.threshold, 4),
                       "positives": c.positives, "negatives": c.negatives, "source": c.source}
                      for c in tuned.per_class if c.source != "prior"]
    base_f1 = _micro_f1(labels[ok], probs[ok], prior)
    new_f1 = _micro_f1(labels[ok], probs[ok], np.asarray(tuned.thresholds))
    result.metrics = [{"metric": "micro_f1 (reviewed, in-sample)", "base": base_f1, "new": new_f1,
                       "change": None if base_f1 is None or new_f1 is None else round(new_f1 - base_f1, 4)}]
    if params.retag_field:
        result.retag = retag(collection, model, model.options.checkpoint, params.retag_field,
                             thresholds=str(path), progress=progress)
    return result
