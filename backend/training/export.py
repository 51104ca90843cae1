"""Corrections out of the store: the official finetune JSON (what training reads), Label
Studio tasks, or a FiftyOne-importable JSON, with the images the server cached.

The store holds, per annotation, the final labels as RAM class ids (`final_ram_tags`)
and the RAM classes the annotator could have chosen (`reviewed_ram`, the project's
mapped labels): positives, and known negatives, so training need not guess what an
absent label means.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ram_client.labelstudio.results import ControlKind, choice_item
from ram_model.review import atomic_write_json

from ..store import Correction, Store

__all__ = ["ExportSummary", "cached_image_of", "export_corrections", "finetune_entries"]

Format = Literal["ram", "labelstudio", "fiftyone"]


@dataclass
class ExportSummary:
    exported: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"annotation_id", "reason"}

    def to_dict(self) -> dict[str, Any]:
        return {"exported": self.exported, "skipped": list(self.skipped)}


def cached_image_of(store: Store, c: Correction) -> str | None:
    """The cached file of a correction's image (its own, else its task's latest prediction's)."""
    if c.image_path and Path(c.image_path).is_file():
        return c.image_path
    if c.project is not None and c.task_id is not None:
        prediction = store.latest_prediction(c.project, c.task_id)
        if prediction is not None and prediction.image_path and Path(prediction.image_path).is_file():
            return prediction.image_path
    return None


def finetune_entries(
    store: Store, project: str, ram_names: Sequence[str] | None = None, *, image_root: Path | None = None
) -> tuple[list[dict[str, Any]], ExportSummary]:
    """One official finetune entry per live correction with a cached image and a RAM-mapped label.

    `image_path` is relative to `image_root` when given (the image cache), else absolute.
    """
    summary = ExportSummary()
    entries: list[dict[str, Any]] = []
    for c in store.corrections(project=project):
        image = cached_image_of(store, c)
        if image is None:
            summary.skipped.append({"annotation_id": c.annotation_id, "reason": "image not cached (never fetched)"})
            continue
        positives = sorted({t["ram_index"] for t in c.final_ram_tags if isinstance(t.get("ram_index"), int)})
        if not positives and not c.reviewed_ram:  # a removed tag (a known negative) is evidence too
            summary.skipped.append({"annotation_id": c.annotation_id, "reason": "no label with a RAM tag"})
            continue
        path = Path(image)
        if image_root is not None:
            path = path.resolve().relative_to(image_root.resolve())
        recorded = {t["ram_index"]: t.get("ram_name") for t in c.final_ram_tags}
        names = [ram_names[i] if ram_names is not None else str(recorded.get(i) or i) for i in positives]
        entry = {
            "image_path": path.as_posix(),
            "caption": [", ".join(names)],
            "union_label_id": positives,
            "parse_label_id": [positives],
        }
        if c.reviewed_ram:
            entry["reviewed_label_id"] = sorted(set(c.reviewed_ram) | set(positives))
        entries.append(entry)
        summary.exported += 1
    return entries, summary


def _control_of(c: Correction, control: str, values: Sequence[Any]) -> tuple[str, ControlKind]:
    """(to_name, type) of a control, as the webhook recorded them; rows stored before that
    fall back to what the values look like (paths: a Taxonomy) and the usual `image`."""
    meta = c.controls.get(control) or {}
    kind = meta.get("type")
    if kind not in ("choices", "taxonomy"):
        kind = "taxonomy" if values and isinstance(values[0], list) else "choices"
    return meta.get("to_name") or "image", kind  # type: ignore[return-value]


def _labelstudio_tasks(store: Store, project: str) -> list[dict[str, Any]]:
    tasks = []
    for c in store.corrections(project=project):
        result = []
        for control, values in c.final.items():
            to_name, kind = _control_of(c, control, values)
            result.append(choice_item(control, to_name, kind, values))
        task: dict[str, Any] = {"data": {"image": c.image_ref, "ram_cached_image": cached_image_of(store, c)},
                                "annotations": [{"result": result}]}
        if c.predicted:
            predicted = []
            for control, chosen in c.predicted.items():
                if not chosen:
                    continue
                to_name, kind = _control_of(c, control, c.final.get(control) or [])
                # a Taxonomy's stored choices keep their path (older rows: the node's own value)
                values = [p.get("path") or [p["value"]] if kind == "taxonomy" else p["value"] for p in chosen]
                predicted.append(choice_item(control, to_name, kind, values))
            task["predictions"] = [{"model_version": c.model_version, "result": predicted}]
        tasks.append(task)
    return tasks


def _fiftyone_samples(store: Store, project: str) -> list[dict[str, Any]]:
    """`fiftyone.types.FiftyOneImageClassificationDataset`-like: filepath + labels + RAM's prediction."""
    samples = []
    for c in store.corrections(project=project):
        image = cached_image_of(store, c)
        if image is None:
            continue
        samples.append({
            "filepath": image,
            "ground_truth": [t["ram_name"] or t["label"] for t in c.final_ram_tags],
            "labels": [t["label"] for t in c.final_ram_tags],
            "ram": [{"label": t["name"], "confidence": t["score"]} for t in (c.ram_tags or [])],
            "model_version": c.model_version,
            "label_studio": {"project": c.project, "task": c.task_id, "annotation": c.annotation_id},
        })
    return samples


def export_corrections(
    store: Store, project: str, out: Path, *, fmt: Format, ram_names: Sequence[str] | None = None, image_root: Path | None = None
) -> ExportSummary:
    """Write the project's corrections to `out` in `fmt`; returns what was written and skipped.

    Nothing to export writes nothing: an existing `out` (an earlier export, someone's data)
    is never replaced by an empty list."""
    if fmt == "ram":
        rows, summary = finetune_entries(store, project, ram_names, image_root=image_root)
    else:
        rows = _labelstudio_tasks(store, project) if fmt == "labelstudio" else _fiftyone_samples(store, project)
        summary = ExportSummary(exported=len(rows))
    if rows:
        atomic_write_json(out, rows, indent=None)
    return summary

