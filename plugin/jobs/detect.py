"""Detect RAM's tags: boxes (and masks) per sample into an `fo.Detections` field, resumable.

RAM tags each image, its fired tags prompt the grounded detector, SAM cuts masks when a
segmenter is named (ram_model.grounding, the Grounded-SAM recipe). FiftyOne boxes are
[x, y, width, height] relative to the image; an instance mask covers the box only (the
full-image SAM mask cropped to the box's pixels). Each written `fo.Detections` carries the
`model_version` that made it: a rerun skips samples already done by the same models and
thresholds, and refuses to mix in another version unless asked to overwrite. Writes go a
chunk at a time (bulk `set_values`), so a killed run loses at most the chunk in flight.
With a label field, only fired tags that map onto its classes are prompted, and boxes get
its class names (mapped like Tag with RAM's label field).
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import lru_cache

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np

from plugin.errors import PluginInputError, RunConflictError
from plugin.jobs import SampleJobResult
from plugin.fo_convert import distinct_labels, label_kind
from ram_model import EngineConfig
from plugin.params import DetectParams
from ram_model.progress import ProgressFn

__all__ = ["DetectParams", "DetectResult", "detect_samples", "get_labeler", "to_fo_detections"]

@dataclass
class DetectResult(SampleJobResult):
    field: str
    model_version: str
    detected: int = 0
    boxes: int = 0


_lock = threading.Lock()


@lru_cache(maxsize=2)
def _load(config: EngineConfig, detector: str, segmenter: str | None, box: float | None, text: float | None):
    from ram_model import TaggingEngine
    from ram_model.grounding import GroundedLabeler, load_detector, load_segmenter

    engine = TaggingEngine.from_config(config)
    det = load_detector(detector, device=engine.device, words=engine.vocab.names, box_threshold=box,
                        text_threshold=text)
    seg = load_segmenter(segmenter, device=engine.device) if segmenter else None
    return GroundedLabeler(engine, det, seg)


def get_labeler(config: EngineConfig, params: DetectParams):
    """RAM + detector (+ segmenter), loaded once per process for these settings."""
    with _lock:
        return _load(config, params.detector, params.segmenter, params.box_threshold, params.text_threshold)


def to_fo_detections(result, version: str) -> fo.Detections:
    """ram_model.grounding results -> fo.Detections ([x, y, w, h] relative; masks cropped to the box)."""
    width, height = result.size
    out = []
    for d in result.detections:
        x0, y0, x1, y1 = d.box
        det = fo.Detection(label=d.label, bounding_box=[x0, y0, x1 - x0, y1 - y0], confidence=d.score)
        if d.mask is not None:
            c0, r0 = int(np.floor(x0 * width)), int(np.floor(y0 * height))
            c1, r1 = max(int(np.ceil(x1 * width)), c0 + 1), max(int(np.ceil(y1 * height)), r0 + 1)
            det.mask = np.ascontiguousarray(d.mask[r0:r1, c0:c1])
        out.append(det)
    return fo.Detections(detections=out, model_version=version)


def _label_map(collection: foc.SampleCollection, params: DetectParams, vocab) -> dict[str, str] | None:
    if params.label_field is None:
        return None
    from ram_model.review import build_label_mapping, load_synonyms

    label_kind(collection, params.label_field)
    labels = distinct_labels(collection, params.label_field)
    mapping = build_label_mapping(labels, vocab.names, ram_names_zh=vocab.names_zh,
                                  synonyms=load_synonyms(params.synonyms) if params.synonyms else None)
    out: dict[str, str] = {}
    for label, indices in zip(mapping.labels, mapping.ram_indices):
        for i in indices:
            out.setdefault(vocab.names[i], label)
    return out


def detect_samples(collection: foc.SampleCollection, labeler, params: DetectParams,
                   progress: ProgressFn | None = None) -> DetectResult:
    from ram_model.cli.detect import detect_model_version

    if len(collection) == 0:
        raise PluginInputError("the view is empty: nothing to detect")
    version = detect_model_version(labeler)
    # The tags that fire (policy) and the label mapping decide what is prompted: part of the mark.
    d = labeler.detector
    settings = (f"{params.policy}|{params.label_field}|{params.synonyms}|{d.box_threshold}|{d.text_threshold}|"
                f"{d.nms_iou}").encode()
    version = f"{version}-{hashlib.sha256(settings).hexdigest()[:8]}"
    labels = _label_map(collection, params, labeler.engine.vocab)
    dataset = collection._dataset
    ids, paths = collection.values(["id", "filepath"])
    done: dict[str, str | None] = {}
    if dataset.has_sample_field(params.field):
        schema = dataset.get_field(params.field)
        if getattr(schema, "document_type", None) is not fo.Detections:
            raise RunConflictError(f"field {params.field!r} exists and is not fo.Detections; choose another name")
        done = dict(zip(ids, collection.values(f"{params.field}.model_version")))
    others = {v for v in done.values() if v is not None and v != version}
    if others and not params.overwrite:
        raise RunConflictError(f"field {params.field!r} holds detections of other models or settings "
                               f"({', '.join(sorted(others))}); choose another field or enable overwrite")
    todo = [(i, p) for i, p in zip(ids, paths) if params.overwrite or done.get(i) != version]
    result = DetectResult(params.field, version, total=len(ids), skipped=len(ids) - len(todo))
    if progress is not None:
        progress(result.skipped, result.total)
    for start in range(0, len(todo), params.chunk_size):
        chunk = todo[start:start + params.chunk_size]
        found = list(labeler.run([p for _, p in chunk], labels=labels, policy=params.policy))
        values = {}
        for (sample_id, path), r in zip(chunk, found):
            if r.error is not None:
                result.record_failure(sample_id, path, r.error)
                continue
            values[sample_id] = to_fo_detections(r, version)
            result.boxes += len(r.detections)
        if values:
            dataset.set_values(params.field, values, key_field="id")
            result.detected += len(values)
        if progress is not None:
            progress(result.skipped + start + len(chunk), result.total)
    return result
