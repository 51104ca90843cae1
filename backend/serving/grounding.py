"""The server's grounded detector + segmenter: loaded once (when `--detector` is set), shared by all projects.

The detector and segmenter are heavier than RAM and not re-entrant, so one lock serialises
their passes (RAM's own forward is already thread-safe); requests run in the thread pool,
never on the event loop. Memory is bounded by the labeler's chunking (a few images and a
chunk of masks at a time), and by `max_upload_images` per request as for /v1/tag.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ram_model import ThresholdPolicy

from ..errors import BackendError

__all__ = ["GroundingService", "DetectorNotLoaded", "build_grounding", "region_source_version", "require_grounding"]


class DetectorNotLoaded(BackendError, status_code=409, code="detector_not_loaded"):
    """/v1/detect or a region config reached a server started without `--detector`."""


class GroundingService:
    def __init__(self, labeler: Any) -> None:
        from ram_model.cli.detect import detect_model_version

        self.labeler = labeler
        self.model_version = detect_model_version(labeler)
        self._lock = threading.Lock()

    @property
    def has_segmenter(self) -> bool:
        return self.labeler.segmenter is not None

    def info(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "random_weights": self.labeler.random_weights,
                **self.labeler.info()}

    def run(self, inputs: Sequence[Any], *, labels: Mapping[str, str] | None = None, segment: bool = False,
            policy: ThresholdPolicy | None = None) -> list[Any]:
        """GroundedResults in input order (blocking; call it from a worker thread)."""
        if segment and not self.has_segmenter:
            raise DetectorNotLoaded("masks were asked for but the server runs no segmenter; start it with "
                                    "--segmenter (e.g. sam)")
        with self._lock:
            return list(self.labeler.run(inputs, labels=labels, segment=segment, policy=policy))


def build_grounding(settings: Any, engine: Any, policy: ThresholdPolicy) -> GroundingService | None:
    """The service the settings ask for, or None when no detector is configured."""
    if not settings.detector:
        if settings.segmenter:
            raise BackendError("--segmenter needs --detector (masks are cut from the detector's boxes)")
        return None
    from ram_model.grounding import GroundedLabeler, load_detector, load_segmenter

    detector = load_detector(settings.detector, device=engine.device, words=engine.vocab.names)
    segmenter = load_segmenter(settings.segmenter, device=engine.device) if settings.segmenter else None
    return GroundingService(GroundedLabeler(engine, detector, segmenter, policy))


def region_source_version(service: GroundingService | None, evidence_boxes: bool) -> str | None:
    """What fills region controls: the detector's version, "+ram-evidence" with evidence boxes on;
    None: nothing (region-only configs are then refused). It joins each project's model_version."""
    parts = [service.model_version if service is not None else None, "ram-evidence" if evidence_boxes else None]
    return "+".join(p for p in parts if p) or None


def require_grounding(service: GroundingService | None) -> GroundingService:
    """The server's detector, or the one-line refusal of a server started without `--detector`."""
    if service is None:
        raise DetectorNotLoaded("this server runs no detector; start it with --detector (e.g. grounding-dino-tiny, "
                                "or random:tiny to try)")
    return service
