"""Label Studio's result format, written and read one way for the server and the plugin.

A prediction or annotation is a list of result items, one per control:
`{"from_name", "to_name", "type", "value": {type: ...}, "score"}`. For a `Choices` control
the value is `{"choices": [value, ...]}`, for a `Taxonomy` `{"taxonomy": [[root, ..., node],
...]}`. Region results (rectangles, brush masks, polygons) are further item types that a
`regions` module beside this one adds; every reader here skips types it does not know.

The rules that used to differ between the server and the plugin:

- **score**: an item scores the **mean** of its chosen labels' confidences, and a
  prediction the mean of its items' scores. Label Studio sorts tasks by this number to show
  the least certain first; with the best label's confidence instead, a task where RAM is
  sure of one label and guesses three more would rank as certain. The mean is what the
  server has always sent, so projects that sort by it keep their order.
- **the annotation that counts**: submitted (not skipped), a ground-truth one first, then
  the most recently updated, then the highest id. Marking an annotation as ground truth is
  the reviewer saying which one is right, so it wins over recency.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "ControlKind",
    "choice_item",
    "control_values",
    "counting_annotation",
    "item_score",
    "prediction_score",
]

ControlKind = Literal["choices", "taxonomy"]
_KINDS = ("choices", "taxonomy")


def item_score(scores: Sequence[float]) -> float:
    """The score of one result item: the mean of its chosen labels' confidences (0 for none)."""
    return float(np.mean(scores)) if len(scores) else 0.0


def prediction_score(items: Sequence[Mapping[str, Any]]) -> float | None:
    """A prediction's overall score: the mean of its scored items' scores (None for no item)."""
    scores = [float(item["score"]) for item in items if isinstance(item.get("score"), (int, float))]
    return float(np.mean(scores)) if scores else None


def choice_item(from_name: str, to_name: str, kind: ControlKind, values: Sequence[Any],
                scores: Sequence[float] | None = None) -> dict[str, Any]:
    """One Choices or Taxonomy result item; `values` are choice values, or taxonomy paths
    (sequences of node values from the root). With `scores` (one per value) it carries the
    item score; without, it is an annotation's item (no score)."""
    if kind not in _KINDS:
        raise ValueError(f"a choice result is 'choices' or 'taxonomy', not {kind!r}")
    chosen = [list(v) for v in values] if kind == "taxonomy" else list(values)
    item: dict[str, Any] = {"from_name": from_name, "to_name": to_name, "type": kind, "value": {kind: chosen}}
    if scores is not None:
        item["score"] = item_score(scores)
    return item


def control_values(result: Sequence[Any], from_name: str, kind: ControlKind = "choices") -> list[Any]:
    """The values a result chose for one control, in order, as Label Studio stores them
    (strings for Choices, paths as lists for a Taxonomy); items of other controls or types are skipped."""
    values: list[Any] = []
    for item in result:
        if isinstance(item, Mapping) and item.get("from_name") == from_name:
            values.extend((item.get("value") or {}).get(kind) or [])
    return values


def counting_annotation(annotations: Sequence[Any] | None) -> Mapping[str, Any] | None:
    """The annotation that counts among a task's: submitted (not skipped) with a result list;
    ground truth first, then the most recently updated, then the highest id."""
    submitted = [a for a in annotations or []
                 if isinstance(a, Mapping) and not a.get("was_cancelled") and isinstance(a.get("result"), list)]
    if not submitted:
        return None
    return max(submitted, key=lambda a: (bool(a.get("ground_truth")), str(a.get("updated_at") or ""),
                                         a.get("id") if isinstance(a.get("id"), int) else 0))
