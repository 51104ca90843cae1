"""Region pre-annotations for Label Studio: RectangleLabels / BrushLabels / PolygonLabels on an Image.

When the server runs a detector (`--detector`), every such control of a project's config is
filled from the image's grounded detections: its `<Label>` values are mapped onto RAM tags
exactly like Choices (`predicted_values`, the mapping file, exact / normalised / plural
names; `alias` is what is written), only fired tags that map to a label prompt the detector,
and each box becomes a region of that label with its score. Brush and polygon controls get
masks when a segmenter runs. A config with Choices and region controls gets both.
The result items themselves are built by the one Label Studio format layer
(`ram_client.labelstudio.regions`).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ram_client.labelstudio.regions import REGION_TYPES, region_result
from ram_model.review import build_label_mapping, normalize_tag

__all__ = ["RegionControl", "region_controls", "predict_regions"]


@dataclass(frozen=True)
class RegionControl:
    name: str
    to_name: str
    kind: str  # a REGION_TYPES key
    data_key: str
    labels: Mapping[str, str]  # RAM tag name -> the value written (alias or value); unmapped labels absent
    ram_indices: tuple[int, ...]  # the RAM classes those tags are
    label_count: int = 0
    unmapped: tuple[str, ...] = ()  # labels that match no RAM tag (never predicted)

    def report(self) -> dict:
        """The /setup report, in the shape of the Choices controls' (labelstudio.project.ServedControl)."""
        return {"from_name": self.name, "to_name": self.to_name, "type": self.kind, "labels": self.label_count,
                "mapped": self.label_count - len(self.unmapped), "unmapped": list(self.unmapped)}


def region_controls(label_config: str | None, ram_names: Sequence[str], ram_names_zh: Sequence[str] | None = None,
                    file_synonyms: Mapping[str, Sequence[str]] | None = None) -> tuple[RegionControl, ...]:
    """The config's region controls bound to an Image, with their labels mapped onto RAM tags."""
    if not label_config:
        return ()
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError:
        return ()  # the Choices parser already reports a broken config
    images = {el.get("name"): (el.get("value") or "").lstrip("$") for el in root.iter() if el.tag.lower() == "image"}
    out: list[RegionControl] = []
    for el in root.iter():
        kind = el.tag.lower()
        if kind not in REGION_TYPES or el.get("toName") not in images:
            continue
        values: dict[str, str] = {}
        synonyms: dict[str, list[str]] = {normalize_tag(k): list(v) for k, v in (file_synonyms or {}).items()}
        for label in el.iter():
            if label is el or label.tag.lower() != "label" or label.get("value") is None:
                continue
            values[label.get("value")] = label.get("alias") or label.get("value")
            targets = [p.strip() for p in (label.get("predicted_values") or "").split(",") if p.strip()]
            if targets:
                synonyms[normalize_tag(label.get("value"))] = targets
        if not values:
            continue
        mapping = build_label_mapping(list(values), ram_names, synonyms=synonyms, ram_names_zh=ram_names_zh)
        tag_to_value: dict[str, str] = {}
        for label, indices in zip(mapping.labels, mapping.ram_indices):
            for i in indices:
                tag_to_value.setdefault(ram_names[i], values[label])
        indices = tuple(sorted({i for idx in mapping.ram_indices for i in idx}))
        out.append(RegionControl(el.get("name"), el.get("toName"), kind, images[el.get("toName")], tag_to_value,
                                 indices, len(values), tuple(mapping.unmapped)))
    return tuple(out)


def predict_regions(service: Any, controls: Sequence[RegionControl], images: Mapping[int, Mapping[str, str]]
                    ) -> dict[int, list[dict[str, Any]]]:
    """Region result items per task position; `images[pos][data_key]` is the task's image file.

    Blocking (detector passes): call from a worker thread. One detector run per control
    and image batch; a control whose labels map onto no RAM tag adds nothing.
    """
    out: dict[int, list[dict[str, Any]]] = {pos: [] for pos in images}
    for control in controls:
        if not control.labels:
            continue
        positions = [pos for pos, files in images.items() if control.data_key in files]
        segment = control.kind != "rectanglelabels" and service.has_segmenter
        found = service.run([images[p][control.data_key] for p in positions], labels=control.labels, segment=segment)
        for pos, result in zip(positions, found):
            if result.error is not None or result.size is None:
                continue
            width, height = result.size
            for d in result.detections:
                item = region_result(control.kind, control.name, control.to_name,
                                     {"label": d.label, "score": d.score, "box": d.box, "mask": d.mask}, width, height)
                if item is not None:
                    out[pos].append(item)
    return out
