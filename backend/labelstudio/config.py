"""Read a Label Studio labeling config into the controls RAM can fill.

RAM answers "which of these tags are in the image", so it serves every `Choices` or
`Taxonomy` control whose `toName` is an `Image`. Per-control attributes follow Label
Studio's ML-backend conventions: `model_score_threshold` overrides the threshold,
`model_skip="true"` leaves a control alone, and a `Choice`'s `predicted_values`
lists model tag names that mean this choice.
"""
from __future__ import annotations

import hashlib
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal
from xml.parsers import expat

from label_studio_sdk.label_interface import LabelInterface

from ram_client.labelstudio.regions import REGION_TYPES

from ..errors import LabelConfigError, LabelConfigTooLarge

__all__ = ["ConfigLimits", "ControlSpec", "Deadline", "config_digest", "parse_label_config"]

ControlKind = Literal["choices", "taxonomy"]
_SERVED_TAGS = {"choices": "choices", "taxonomy": "taxonomy"}
_TRUE = {"true", "1", "yes"}


@dataclass(frozen=True)
class ControlSpec:
    """One control RAM fills.

    `labels[i]` is the text matched against RAM's vocabulary and `values[i]` what goes
    into the prediction (a Choice's `alias` if it has one, else its `value`); for a
    Taxonomy `paths[i]` is the node's path from the root. `synonyms` maps a label to
    the RAM names from its `predicted_values` attribute.
    """

    name: str
    to_name: str
    kind: ControlKind
    data_key: str
    labels: tuple[str, ...]
    values: tuple[str, ...]
    paths: tuple[tuple[str, ...], ...]
    synonyms: dict[str, tuple[str, ...]]
    multiple: bool
    threshold: float | None


@dataclass(frozen=True)
class ConfigLimits:
    """What one labeling config may cost to read.

    Parsing and mapping grow with the number of elements and of served controls (each
    control is matched against the whole RAM vocabulary), so those are capped, and the
    whole job has a deadline checked between its steps. Real configs are far below
    every default: Label Studio's own templates have a handful of controls and the
    largest taxonomies a few thousand nodes.
    """

    max_bytes: int = 512 * 1024
    max_elements: int = 50_000
    max_depth: int = 64
    max_controls: int = 50
    timeout_s: float = 5.0


class Deadline:
    """A cooperative time limit: long steps call `check` between units of work."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self, doing: str) -> None:
        if time.monotonic() > self._end:
            raise LabelConfigTooLarge(
                f"the labeling config took over {self.seconds:g} s while {doing}; simplify it "
                "(fewer choices or controls) or raise --label-config-timeout"
            )


def config_digest(label_config: str) -> str:
    return hashlib.sha256(label_config.encode("utf-8")).hexdigest()[:16]


def _check_structure(text: str, limits: ConfigLimits, deadline: Deadline) -> None:
    """One streaming pass with expat before any tree is built: refuse DOCTYPEs and
    entities (no expansion ever happens), non-UTF-8 text, and configs over the size,
    element or depth limits, so the parsers that follow only see bounded input."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise LabelConfigError("the labeling config is not valid Unicode text (lone surrogate)") from None
    if len(data) > limits.max_bytes:
        raise LabelConfigTooLarge(
            f"the labeling config is {len(data)} bytes; the limit is {limits.max_bytes} (--max-label-config-kb)"
        )
    depth = elements = 0

    def start(name: str, attrs: object) -> None:
        nonlocal depth, elements
        depth += 1
        elements += 1
        if depth > limits.max_depth:
            raise LabelConfigTooLarge(f"the labeling config nests deeper than {limits.max_depth} elements")
        if elements > limits.max_elements:
            raise LabelConfigTooLarge(f"the labeling config has more than {limits.max_elements} elements")
        if elements % 1000 == 0:
            deadline.check("reading its XML")

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    def refuse(*args: object) -> None:
        raise LabelConfigError("labeling configs with a DOCTYPE or entities are not accepted")

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise LabelConfigError(f"the labeling config is not valid XML: {exc}") from None


def parse_label_config(
    label_config: str | None, *, limits: ConfigLimits = ConfigLimits(), deadline: Deadline | None = None,
    regions_ok: bool = False,
) -> list[ControlSpec]:
    """All controls RAM can serve, in config order; raise `LabelConfigError` if none
    (`LabelConfigTooLarge` when over `limits`). `regions_ok`: the server runs a detector, so a
    config whose only controls are RectangleLabels/BrushLabels/PolygonLabels is servable (no specs).

    The error names what the config has and what to add, since the person reading it
    is editing that config in Label Studio's UI.
    """
    if label_config is not None and not isinstance(label_config, str):
        raise LabelConfigError(f"the labeling config must be XML text, got {type(label_config).__name__}")
    if not label_config or not label_config.strip():
        raise LabelConfigError("no labeling config given: send `label_config` (or call /setup with `schema`) first")
    if "<!DOCTYPE" in label_config.upper() or "<!ENTITY" in label_config.upper():
        raise LabelConfigError("labeling configs with a DOCTYPE or entities are not accepted")
    deadline = deadline or Deadline(limits.timeout_s)
    _check_structure(label_config, limits, deadline)
    try:
        interface = LabelInterface(label_config)
        root = ET.fromstring(label_config)
    except Exception as exc:  # lxml and the SDK raise several unrelated types
        raise LabelConfigError(f"the labeling config is not valid XML: {exc}") from None
    deadline.check("parsing it")

    images = {obj.name: obj for obj in interface.objects if obj.tag.lower() == "image"}
    if not images:
        raise LabelConfigError(
            "the labeling config has no <Image> tag; RAM tags images, so add e.g. "
            '<Image name="image" value="$image"/>'
        )
    elements = {el.get("name"): el for el in root.iter() if el.get("name")}
    specs: list[ControlSpec] = []
    seen_controls: list[str] = []
    for control in interface.controls:
        deadline.check("reading its controls")
        kind = _SERVED_TAGS.get(control.tag.lower())
        seen_controls.append(f"<{control.tag} name={control.name!r} toName={','.join(control.to_name)!r}>")
        if kind is None or str(control.attr.get("model_skip", "")).lower() in _TRUE:
            continue
        targets = [name for name in control.to_name if name in images]
        if not targets:
            continue
        image = images[targets[0]]
        element = elements.get(control.name)
        if element is None:
            continue
        if kind == "choices":
            specs.append(_choices_spec(control.name, image.name, _data_key(image.value), element))
        else:
            specs.append(_taxonomy_spec(control.name, image.name, _data_key(image.value), element))
    if len(specs) > limits.max_controls:
        raise LabelConfigTooLarge(
            f"the labeling config binds {len(specs)} Choices/Taxonomy controls to images; the limit is "
            f"{limits.max_controls}"
        )
    if not specs:
        regions = [c for c in interface.controls if c.tag.lower() in REGION_TYPES
                   and any(name in images for name in c.to_name)]
        if regions and regions_ok:
            return specs  # region controls only: labelstudio.regions serves them
        have = ", ".join(seen_controls) or "no controls"
        hint = (" (RectangleLabels/BrushLabels/PolygonLabels need a server started with --detector; "
                "RectangleLabels also with --evidence-boxes)") if regions else ""
        raise LabelConfigError(
            f"no <Choices> or <Taxonomy> control is bound to an <Image> (the config has {have}){hint}; "
            f'add e.g. <Choices name="tags" toName="{next(iter(images))}" choice="multiple"> with <Choice> values'
        )
    return specs


def _data_key(value: str | None) -> str:
    # `$image` names the task data field; a literal URL in `value` has no `$`.
    return (value or "").lstrip("$")


def _threshold(element: ET.Element, name: str) -> float | None:
    raw = element.get("model_score_threshold")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise LabelConfigError(f"control {name!r}: model_score_threshold={raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise LabelConfigError(f"control {name!r}: model_score_threshold={raw!r} must be within [0, 1]")
    return value


def _synonyms(element: ET.Element) -> tuple[str, ...]:
    raw = element.get("predicted_values") or ""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice_text(element: ET.Element) -> tuple[str, str] | None:
    value = element.get("value")
    if value is None:
        return None
    return value, element.get("alias") or value


class _ChoiceNodes:
    """The <Choice> nodes of one control in document order, as a ControlSpec holds them.

    Choices and Taxonomy differ only in which nodes count and in each node's path (a
    Taxonomy choice's path runs through its parents); what one node adds is the same.
    """

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.values: list[str] = []
        self.paths: list[tuple[str, ...]] = []
        self.synonyms: dict[str, tuple[str, ...]] = {}

    def add(self, node: ET.Element, prefix: tuple[str, ...] = ()) -> tuple[str, ...] | None:
        """Add `node` under `prefix`; its path, or None for a node without a value (skipped)."""
        text = _choice_text(node)
        if text is None:
            return None
        path = prefix + (text[1],)
        self.labels.append(text[0])
        self.values.append(text[1])
        self.paths.append(path)
        if _synonyms(node):
            self.synonyms[text[0]] = _synonyms(node)
        return path

    def spec(self, name: str, to_name: str, data_key: str, element: ET.Element, *, kind: str,
             multiple: bool) -> ControlSpec:
        return ControlSpec(
            name=name,
            to_name=to_name,
            kind=kind,
            data_key=data_key,
            labels=tuple(self.labels),
            values=tuple(self.values),
            paths=tuple(self.paths),
            synonyms=self.synonyms,
            multiple=multiple,
            threshold=_threshold(element, name),
        )


def _choices_spec(name: str, to_name: str, data_key: str, element: ET.Element) -> ControlSpec:
    nodes = _ChoiceNodes()
    for choice in element.iter():
        if choice is not element and choice.tag.lower() == "choice":
            nodes.add(choice)
    if not nodes.labels:
        raise LabelConfigError(f"control {name!r} has no <Choice value=...> children")
    multiple = (element.get("choice") or "single").lower() == "multiple"
    return nodes.spec(name, to_name, data_key, element, kind="choices", multiple=multiple)


def _taxonomy_spec(name: str, to_name: str, data_key: str, element: ET.Element) -> ControlSpec:
    nodes = _ChoiceNodes()

    def walk(node: ET.Element, prefix: tuple[str, ...]) -> None:
        for child in node:
            if child.tag.lower() != "choice":
                continue
            path = nodes.add(child, prefix)
            if path is not None:
                walk(child, path)

    walk(element, ())
    if not nodes.labels:
        raise LabelConfigError(f"taxonomy {name!r} has no <Choice value=...> nodes")
    # Label Studio's Taxonomy is multi-select unless maxUsages="1".
    multiple = element.get("maxUsages") not in ("1",)
    return nodes.spec(name, to_name, data_key, element, kind="taxonomy", multiple=multiple)
