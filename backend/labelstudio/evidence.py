"""Evidence-box regions for Label Studio: RectangleLabels from RAM's own attention, no detector.

Opt-in (a server setting; see backend/README's note): for each RectangleLabels control of a
project (`backend.labelstudio.regions.region_controls`, labels mapped onto RAM tags as for Choices),
the fired tags that map onto one of its labels get their evidence box
(`ram_model.evidence`) as a region, through the one format layer
(`ram_client.labelstudio.evidence_regions`: half the tag's score, meta "RAM evidence"), so a
reviewer never mistakes them for a detector's boxes. Brush and polygon controls get nothing
from evidence (a grid-cell box is no mask).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ram_client.labelstudio.evidence_regions import evidence_rectangles
from ram_model import TaggingEngine, ThresholdPolicy
from ram_model.evidence import EvidenceRequest
from ram_model.inference.images import load_image

from .regions import RegionControl

__all__ = ["predict_evidence_regions"]


def predict_evidence_regions(engine: TaggingEngine, controls: Sequence[RegionControl],
                             images: Mapping[int, Mapping[str, str]], policy: ThresholdPolicy,
                             thresholds: np.ndarray) -> dict[int, list[dict[str, Any]]]:
    """Region result items per task position; `images[pos][data_key]` is the task's image file.

    `thresholds` are the engine vocabulary's (the server's policy resolved): the boxes are for
    exactly the tags that fire. Blocking (a model pass per control): call from a worker thread.
    """
    out: dict[int, list[dict[str, Any]]] = {pos: [] for pos in images}
    names = engine.vocab.names
    for control in controls:
        if control.kind != "rectanglelabels" or not control.labels:
            continue
        positions = [pos for pos, files in images.items() if control.data_key in files]
        wanted = control.labels

        def select(probs: np.ndarray, _wanted: Mapping[str, str] = wanted) -> list[int]:
            return [int(i) for i in policy.fired(probs, thresholds) if names[i] in _wanted]

        paths = [images[p][control.data_key] for p in positions]
        for pos, path, pred in zip(positions, paths, engine.predict(paths, evidence=EvidenceRequest(select=select))):
            if not pred.ok or not pred.evidence:
                continue
            # the size Label Studio shows the image at (EXIF-rotated, as the engine saw it)
            width, height = load_image(path, exif_transpose=engine.config.exif_transpose,
                                       max_pixels=engine.config.max_image_pixels).size
            entries = [{"name": e.name, "box": e.box, "score": e.score} for e in pred.evidence]
            out[pos].extend(evidence_rectangles(entries, from_name=control.name, to_name=control.to_name,
                                                width=width, height=height, labels=control.labels))
    return out
