"""Detection disagreements: where RAM's grounded boxes and the existing boxes disagree, ranked for review.

Matching is FiftyOne's own (`evaluate_detections`, COCO-style, class-wise, at `iou`):
* likely missing: a confident RAM detection (confidence >= `min_score`) that matches no
  existing box of its label (an object nobody boxed); its score is the confidence;
* likely wrong: an existing box that no RAM detection matches; scored 1.0 when RAM found
  no box of that label anywhere in the image (RAM does not see the label at all), else 0.5
  (RAM sees the label elsewhere: the box may be misplaced or a duplicate).
A sample's score is its highest flag; a saved view lists flagged samples best first, as
Find disagreements does for tags. Run the detector with the label field as its label field
(`Detect RAM's tags`, label field), so both fields speak the same class names.
"""
from __future__ import annotations

from dataclasses import dataclass

import fiftyone as fo
import fiftyone.core.collections as foc
from fiftyone import ViewField as F

from plugin.errors import PluginInputError, RunConflictError
from plugin.jobs import JobResult
from plugin.params import DetectDisagreementParams
from ram_model.progress import ProgressFn

__all__ = ["DetectDisagreementParams", "DetectDisagreementResult", "find_detection_disagreements"]

UNSEEN_SCORE, ELSEWHERE_SCORE = 1.0, 0.5


@dataclass
class DetectDisagreementResult(JobResult):
    saved_view: str
    missing_field: str
    wrong_field: str
    score_field: str
    samples: int = 0
    flagged_samples: int = 0
    likely_missing: int = 0
    likely_wrong: int = 0


def _detections_field(dataset: fo.Dataset, name: str) -> None:
    field = dataset.get_field(name) if dataset.has_sample_field(name) else None
    if field is None or getattr(field, "document_type", None) is not fo.Detections:
        raise PluginInputError(f"field {name!r} must be an fo.Detections field of dataset {dataset.name!r}")


def find_detection_disagreements(collection: foc.SampleCollection, params: DetectDisagreementParams, *,
                                 progress: ProgressFn | None = None) -> DetectDisagreementResult:
    if len(collection) == 0:
        raise PluginInputError("The target view has no samples; nothing to compare")
    dataset = collection._root_dataset
    _detections_field(dataset, params.pred_field)
    _detections_field(dataset, params.gt_field)
    p = params.prefix
    result = DetectDisagreementResult(saved_view=p, missing_field=f"{p}_missing", wrong_field=f"{p}_wrong",
                                      score_field=f"{p}_score", samples=len(collection))
    taken = [f for f in (result.missing_field, result.wrong_field, result.score_field) if dataset.has_sample_field(f)]
    if taken and not params.overwrite and not dataset.has_evaluation(params.eval_key):
        raise RunConflictError(f"fields {', '.join(taken)} exist and were not written by this job; "
                               "choose another output prefix or enable overwrite")
    if dataset.has_evaluation(params.eval_key):
        dataset.delete_evaluation(params.eval_key)
    compared = collection.exists(params.pred_field).exists(params.gt_field)
    if len(compared) == 0:
        raise PluginInputError(f"no sample has both {params.pred_field!r} and {params.gt_field!r}")
    compared.evaluate_detections(params.pred_field, gt_field=params.gt_field, eval_key=params.eval_key,
                                 iou=params.iou, classwise=True)
    key = params.eval_key
    ids, preds, gts = compared.values(["id", params.pred_field, params.gt_field])
    missing, wrong, scores = {}, {}, {}
    for n, (sample_id, pred, gt) in enumerate(zip(ids, preds, gts)):
        found = [d for d in pred.detections if d[key] == "fp" and (d.confidence or 0.0) >= params.min_score]
        seen = {d.label for d in pred.detections}
        unmatched = [d for d in gt.detections if d[key] == "fn"]
        flagged_missing = [fo.Detection(label=d.label, bounding_box=d.bounding_box, confidence=d.confidence)
                           for d in found]
        flagged_wrong = [fo.Detection(label=d.label, bounding_box=d.bounding_box,
                                      confidence=UNSEEN_SCORE if d.label not in seen else ELSEWHERE_SCORE)
                         for d in unmatched]
        missing[sample_id] = fo.Detections(detections=flagged_missing)
        wrong[sample_id] = fo.Detections(detections=flagged_wrong)
        flags = [d.confidence for d in flagged_missing + flagged_wrong]
        scores[sample_id] = max(flags) if flags else None
        result.likely_missing += len(flagged_missing)
        result.likely_wrong += len(flagged_wrong)
        result.flagged_samples += bool(flags)
        if progress is not None and n % 64 == 0:
            progress(n, len(ids))
    dataset.set_values(result.missing_field, missing, key_field="id")
    dataset.set_values(result.wrong_field, wrong, key_field="id")
    dataset.set_values(result.score_field, scores, key_field="id")
    dataset.save_view(p, dataset.exists(result.score_field).sort_by(F(result.score_field), reverse=True),
                      description=f"{params.pred_field} vs {params.gt_field}: likely missing / wrong boxes first",
                      overwrite=True)
    if progress is not None:
        progress(len(ids), len(ids))
    return result
