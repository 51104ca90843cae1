"""RAM tags -> grounded boxes -> masks, one image chunk at a time (the Grounded-SAM RAM recipe).

Each image is decoded once (Pillow, the engine's limits); RAM tags the decoded picture, its
fired tags become the detector's phrases, the detector's boxes (after NMS) go to the
segmenter. A bad image is a result with `error` set, never an exception, so a long run
loses nothing; an image where no tag fires gets no detections and costs no detector pass.

`labels` maps tag names onto a project's labels (Label Studio's RectangleLabels values,
FiftyOne classes): only fired tags with a label are prompted, and detections carry the
label. Without it every fired tag is prompted under its own name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..inference.images import ImageSource, describe_source, load_image
from ..inference.thresholds import Tag, ThresholdPolicy
from .detectors import ZeroShotDetector
from .segmenter import SamSegmenter
from .types import Detection

__all__ = ["GroundedResult", "GroundedLabeler"]


@dataclass
class GroundedResult:
    source: str
    tags: list[Tag] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    size: tuple[int, int] | None = None  # (width, height) of the decoded image
    error: str | None = None


class GroundedLabeler:
    """Holds a TaggingEngine, a detector and optionally a segmenter; `run` streams results."""

    def __init__(self, engine: Any, detector: ZeroShotDetector, segmenter: SamSegmenter | None = None,
                 policy: ThresholdPolicy | None = None, *, chunk: int = 8) -> None:
        self.engine = engine
        self.detector = detector
        self.segmenter = segmenter
        self.policy = policy or ThresholdPolicy()
        self.thresholds = self.policy.resolve(engine.vocab)
        self.chunk = max(chunk, detector.batch_size)

    @property
    def random_weights(self) -> bool:
        return bool(self.engine.random_weights or self.detector.random_weights
                    or (self.segmenter is not None and self.segmenter.random_weights))

    def info(self) -> dict[str, Any]:
        return {"detector": self.detector.info(),
                "segmenter": None if self.segmenter is None else self.segmenter.info()}

    def run(self, sources: Iterable[ImageSource], *, labels: Mapping[str, str] | None = None,
            segment: bool | None = None, policy: ThresholdPolicy | None = None) -> Iterator[GroundedResult]:
        """Results in input order, a chunk at a time. `segment`: None = when a segmenter is loaded;
        `policy`: which tags fire for this call (default: the labeler's)."""
        segment = self.segmenter is not None if segment is None else segment
        cut = (self.policy, self.thresholds) if policy is None else (policy, policy.resolve(self.engine.vocab))
        if segment and self.segmenter is None:
            raise ValueError("masks were asked for but no segmenter is loaded")
        batch: list[ImageSource] = []
        for source in sources:
            batch.append(source)
            if len(batch) >= self.chunk:
                yield from self._chunk(batch, labels, segment, cut)
                batch = []
        if batch:
            yield from self._chunk(batch, labels, segment, cut)

    def _load(self, source: ImageSource) -> Any:
        config = self.engine.config
        try:
            return load_image(source, exif_transpose=config.exif_transpose, max_pixels=config.max_image_pixels)
        except Exception as e:  # noqa: BLE001 - ImageLoadError or anything odd: one line, go on
            return f"{e}" if type(e).__name__ == "ImageLoadError" else f"{describe_source(source)}: {e}"

    def _phrases(self, tags: list[Tag], labels: Mapping[str, str] | None) -> tuple[list[str], list[str]]:
        if labels is None:
            return [t.name for t in tags], [t.name for t in tags]
        kept = [t for t in tags if t.name in labels]
        return [t.name for t in kept], [labels[t.name] for t in kept]

    def _chunk(self, sources: Sequence[ImageSource], labels: Mapping[str, str] | None,
               segment: bool, cut: tuple[ThresholdPolicy, np.ndarray]) -> list[GroundedResult]:
        results = [GroundedResult(describe_source(s)) for s in sources]
        images: dict[int, Any] = {}
        for i, s in enumerate(sources):
            loaded = self._load(s)
            if isinstance(loaded, str):
                results[i].error = loaded
            else:
                images[i] = loaded
                results[i].size = loaded.size
        good = list(images)
        if not good:
            return results
        predictions = self.engine.predict([images[i] for i in good])
        phrase_lists, label_lists = [], []
        for i, pred in zip(good, predictions):
            if pred.error is not None:
                results[i].error = pred.error
                phrase_lists.append([])
                label_lists.append([])
                continue
            results[i].tags = cut[0].select(pred.probs, self.engine.vocab, cut[1])
            phrases, names = self._phrases(results[i].tags, labels)
            phrase_lists.append(phrases)
            label_lists.append(names)
        found = self.detector.detect([images[i] for i in good], phrase_lists)
        for i, dets, names in zip(good, found, label_lists):
            for d in dets:
                d.label = names[d.phrase_index]
            results[i].detections = dets
        if segment and self.segmenter is not None:
            boxes = [np.array([d.box for d in results[i].detections], dtype=np.float32).reshape(-1, 4) for i in good]
            masks = self.segmenter.segment([images[i] for i in good], boxes)
            for i, per_image in zip(good, masks):
                for d, m in zip(results[i].detections, per_image):
                    d.mask = m
        return results
