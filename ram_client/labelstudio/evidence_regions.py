"""Label Studio `RectangleLabels` results from RAM's evidence boxes, marked as lower-grade.

An evidence box is the token-grid region around the peak of a tag's attention map
(`ram_model.evidence`): whole cells (1/12 of the image at 384 px), one per tag, and no claim
that it covers the object. So these regions are opt-in (a project with a RectangleLabels
control whose user turned them on), their score is the tag's probability scaled down by
`EVIDENCE_SCORE_SCALE` (a detector's box of the same label outranks them), and each carries
the region meta text `EVIDENCE_MARK`, which Label Studio shows in the region's details.
The result items are the ones `regions.rectangle_result` writes for detector boxes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .regions import rectangle_result

__all__ = ["EVIDENCE_MARK", "EVIDENCE_SCORE_SCALE", "evidence_rectangles"]

EVIDENCE_SCORE_SCALE = 0.5
EVIDENCE_MARK = "RAM evidence: a coarse box from the tag's attention map, not a detector's box"


def evidence_rectangles(evidence: Sequence[Mapping[str, Any]], *, from_name: str, to_name: str, width: int,
                        height: int, labels: Mapping[str, str],
                        score_scale: float = EVIDENCE_SCORE_SCALE) -> list[dict[str, Any]]:
    """One rectangle per evidence entry {"name", "box", "score"} whose tag maps to a label.

    `labels`: RAM tag name -> the RectangleLabels value it stands for (the project's label
    mapping); tags without a label, and entries without a box (no positive evidence), are left out.
    """
    if not 0.0 < score_scale <= 1.0:
        raise ValueError(f"score_scale must lie in (0, 1], not {score_scale}")
    out = []
    for entry in evidence:
        label = labels.get(str(entry["name"]))
        box = entry.get("box")
        if label is None or box is None:
            continue
        item = rectangle_result(from_name, to_name, label, float(entry.get("score", 1.0)) * score_scale, box,
                                width, height)
        item["meta"] = {"text": [EVIDENCE_MARK]}
        out.append(item)
    return out
