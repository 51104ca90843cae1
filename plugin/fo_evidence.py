"""Evidence maps in FiftyOne: boxes the App draws, a heatmap it overlays, and "where RAM sees <tag>".

The App renders top-level label fields, not lists of heatmaps, so a tagged sample gets two
fields when evidence is asked for:
- `<field>_evidence`: `fo.Detections`, one per fired tag: its evidence box, the tag's score
  as confidence, the token-grid map as the `evidence_map` attribute and `source: "RAM evidence"`
  (a box from attention, coarser and less reliable than a detector's);
- `<field>_heatmap`: one `fo.Heatmap` (range 0..1; the App stretches it over the image),
  holding the best-scored tag's map, or the chosen tag's after `where_ram_sees`.
"""
from __future__ import annotations

from collections.abc import Sequence

import fiftyone as fo
import fiftyone.core.collections as foc
import numpy as np
from fiftyone import ViewField as F

from plugin.errors import PluginInputError

__all__ = ["EVIDENCE_SOURCE", "evidence_detections", "evidence_heatmap", "evidence_view", "where_ram_sees"]

EVIDENCE_SOURCE = "RAM evidence"


def _fo_box(box: Sequence[float]) -> list[float]:
    """[x0, y0, x1, y1] normalised -> FiftyOne's [x, y, width, height] normalised."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def evidence_detections(evidence: Sequence) -> fo.Detections:
    """`ram_model.evidence.TagEvidence` items -> the Detections the App draws (maps without a box are skipped)."""
    return fo.Detections(detections=[
        fo.Detection(label=e.name, bounding_box=_fo_box(e.box), confidence=round(float(e.score), 5),
                     evidence_map=np.round(e.map.astype(np.float64), 3).tolist(), source=EVIDENCE_SOURCE)
        for e in evidence if e.box is not None
    ])


def evidence_heatmap(heat: np.ndarray | Sequence[Sequence[float]]) -> fo.Heatmap:
    """A map (token grid, 0..1) as the App's heatmap, rounded as the Detections' `evidence_map`."""
    return fo.Heatmap(map=np.round(np.asarray(heat, dtype=np.float32), 3), range=[0.0, 1.0])


def evidence_view(collection: foc.SampleCollection, tag: str, field: str = "ram") -> foc.SampleCollection:
    """The samples whose evidence holds `tag`, showing only that tag's box, most confident first."""
    evidence_field = f"{field}_evidence"
    if not collection.has_sample_field(evidence_field):
        raise PluginInputError(f"No field {evidence_field!r}: tag with RAM with 'Evidence maps' on first")
    view = collection.filter_labels(evidence_field, F("label") == tag)
    return view.sort_by(F(f"{evidence_field}.detections.confidence").max(), reverse=True)


def where_ram_sees(collection: foc.SampleCollection, tag: str, field: str = "ram") -> foc.SampleCollection:
    """`evidence_view`, with each sample's heatmap field set to that tag's map so the App overlays
    where RAM sees it (nothing is recomputed)."""
    view = evidence_view(collection, tag, field)
    if len(view) == 0:
        raise PluginInputError(f"RAM's evidence holds no {tag!r} in this view")
    ids, maps = view.values(["id", f"{field}_evidence.detections.evidence_map"])
    collection._root_dataset.set_values(f"{field}_heatmap", {i: evidence_heatmap(m[0]) for i, m in zip(ids, maps)},
                                        key_field="id")
    return view
