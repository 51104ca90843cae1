"""Each fired tag's own score, where Label Studio shows it to the annotator.

Label Studio 1.23 shows one score per prediction (the tab's percentage, our mean) and
draws nothing for the `score` of a classification result, so a label's own probability
never reaches the annotator through `Choices`. A project that wants to see them adds a
read-only text area named `ram_scores` to its config:

    <TextArea name="ram_scores" toName="image" editable="false" rows="3"/>

and every prediction then fills it with one line per chosen label, best first
("Dogs 0.93"). The area is optional; without it predictions are unchanged.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SCORE_TEXT_NAME", "score_text_result", "score_text_target"]

SCORE_TEXT_NAME = "ram_scores"


def score_text_target(label_config: str | None) -> str | None:
    """The `toName` of the config's `<TextArea name="ram_scores">`, or None."""
    if not label_config or SCORE_TEXT_NAME not in label_config:
        return None
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.lower() == "textarea" and element.get("name") == SCORE_TEXT_NAME and element.get("toName"):
            return element.get("toName").split(",")[0].strip()
    return None


def score_text_result(to_name: str, chosen: Mapping[str, Sequence[Any]], *, several: bool) -> dict[str, Any] | None:
    """A textarea result listing each chosen label with its probability (None if nothing fired)."""
    lines = []
    for control, labels in chosen.items():
        for label in labels:
            prefix = f"{control}: " if several else ""
            lines.append(f"{prefix}{label.value} {label.score:.2f}")
    if not lines:
        return None
    return {"from_name": SCORE_TEXT_NAME, "to_name": to_name, "type": "textarea", "value": {"text": lines}}
