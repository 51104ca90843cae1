"""A labeling config bound to the engine: label mapping, thresholds and model_version.

Building this is the expensive part of a request (parsing XML, matching up to 4,585
names), so the app caches one per config text. The mapping itself is the review
core's (`ram_model.review`); the FiftyOne plugin maps its fields with the same code.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ram_model.review import LabelMapping, build_label_mapping, normalize_tag

from ..errors import LabelConfigError
from .config import ConfigLimits, ControlSpec, Deadline, config_digest, parse_label_config
from .score_text import score_text_target

__all__ = ["ProjectModel", "ServedControl", "build_project_model"]

_log = logging.getLogger("backend.labelstudio.project")


@dataclass(frozen=True)
class ServedControl:
    """One control with its mapping onto RAM.

    `columns[i]` is the mapping column of the control's i-th entry (Taxonomy nodes may
    repeat a label); `thresholds[i]` is that entry's threshold, NaN when unmapped.
    """

    spec: ControlSpec
    mapping: LabelMapping
    columns: tuple[int, ...]
    thresholds: np.ndarray
    open_set: tuple[str, ...] = ()  # labels scored as open-set classes (labelstudio.open_set_labels)

    def report(self) -> dict:
        return {
            "from_name": self.spec.name,
            "to_name": self.spec.to_name,
            "type": self.spec.kind,
            "labels": len(self.mapping.labels),
            "mapped": len(self.mapping.labels) - len(self.mapping.unmapped),
            "unmapped": list(self.mapping.unmapped),
            "open_set": list(self.open_set),
        }


@dataclass(frozen=True)
class ProjectModel:
    controls: tuple[ServedControl, ...]
    model_version: str
    config_digest: str
    top_k: int | None = None  # at most this many choices per multiple-choice control
    score_text_to: str | None = None  # toName of a `<TextArea name="ram_scores">` (labelstudio.score_text)
    # Labels that are classes past RAM's vocabulary, at indices K, K+1, ... (labelstudio.open_set_labels).
    open_set_classes: tuple[str, ...] = ()
    regions: tuple = ()  # labelstudio.regions.RegionControl, filled by the server's detector / evidence boxes

    @property
    def ram_classes(self) -> tuple[int, ...]:
        """The RAM class indices the controls' labels map onto, sorted: all a prediction needs."""
        return tuple(sorted({i for c in self.controls for idx in c.mapping.ram_indices for i in idx}
                            | {i for r in self.regions for i in r.ram_indices}))

    def unmapped(self) -> dict[str, list[str]]:
        return {c.spec.name: list(c.mapping.unmapped) for c in self.controls if c.mapping.unmapped}


def _merged_synonyms(
    spec: ControlSpec, file_synonyms: Mapping[str, Sequence[str]] | None
) -> dict[str, list[str]]:
    # The config's own `predicted_values` is the more specific statement, so it wins
    # over the server-wide mapping file for the same (normalised) label.
    merged: dict[str, list[str]] = {}
    for label, targets in (file_synonyms or {}).items():
        merged[normalize_tag(label)] = list(targets)
    for label, targets in spec.synonyms.items():
        merged[normalize_tag(label)] = list(targets)
    return merged


def _bind(
    spec: ControlSpec,
    ram_names: Sequence[str],
    ram_names_zh: Sequence[str] | None,
    ram_thresholds: np.ndarray,
    file_synonyms: Mapping[str, Sequence[str]] | None,
) -> ServedControl:
    unique = list(dict.fromkeys(spec.labels))
    try:
        mapping = build_label_mapping(
            unique, ram_names, synonyms=_merged_synonyms(spec, file_synonyms), ram_names_zh=ram_names_zh
        )
    except ValueError as exc:
        raise LabelConfigError(f"control {spec.name!r}: {exc}") from None
    column_of = {label: i for i, label in enumerate(unique)}
    columns = tuple(column_of[label] for label in spec.labels)
    per_column = mapping.project_thresholds(ram_thresholds)
    if spec.threshold is not None:
        per_column = np.where(np.isnan(per_column), np.nan, spec.threshold)
    return ServedControl(spec, mapping, columns, per_column[list(columns)])


def build_project_model(
    label_config: str | None,
    *,
    ram_names: Sequence[str],
    ram_names_zh: Sequence[str] | None,
    ram_thresholds: np.ndarray,
    engine_version: str,
    file_synonyms: Mapping[str, Sequence[str]] | None = None,
    top_k: int | None = None,
    limits: ConfigLimits = ConfigLimits(),
    detector_version: str | None = None,
) -> ProjectModel:
    """Parse, map and stamp a version that changes whenever a prediction could.

    The version joins the engine's (checkpoint content and class-threshold file) with a
    digest of the thresholds actually applied and of every control's mapping, so Label
    Studio re-predicts after any of them changes and keeps predictions otherwise.
    `detector_version` (the server runs a detector): region controls are served too, and
    their mapping and the detector's version join the digest.
    """
    deadline = Deadline(limits.timeout_s)
    specs = parse_label_config(label_config, limits=limits, deadline=deadline, regions_ok=detector_version is not None)
    bound: list[ServedControl] = []
    for spec in specs:
        deadline.check(f"mapping control {spec.name!r} onto RAM's tags")
        bound.append(_bind(spec, ram_names, ram_names_zh, ram_thresholds, file_synonyms))
    controls = tuple(bound)
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ram_thresholds, dtype=np.float32).tobytes())
    digest.update(f"top_k={top_k}".encode())
    for control in controls:
        digest.update(
            repr(
                (control.spec.name, control.spec.kind, control.spec.multiple, control.spec.threshold,
                 control.spec.values, control.mapping.digest)
            ).encode()
        )
    regions: tuple = ()
    if detector_version is not None:
        from .regions import region_controls

        regions = region_controls(label_config, ram_names, ram_names_zh, file_synonyms)
        if regions:
            digest.update(repr((detector_version, [(r.name, r.kind, sorted(r.labels.items())) for r in regions])).encode())
    version = f"{engine_version}-{digest.hexdigest()[:8]}"
    for control in controls:
        if control.mapping.unmapped:
            _log.warning(
                "control %r: %d label(s) match no RAM tag and will never be predicted: %s "
                "(add predicted_values=\"ram tag,...\" to the <Choice>, or a --mapping-file entry)",
                control.spec.name, len(control.mapping.unmapped), ", ".join(control.mapping.unmapped),
            )
    score_text_to = score_text_target(label_config)
    if score_text_to is not None:
        digest.update(b"ram_scores")
        version = f"{engine_version}-{digest.hexdigest()[:8]}"
    return ProjectModel(controls, version, config_digest(label_config or ""), top_k, score_text_to, regions=regions)
