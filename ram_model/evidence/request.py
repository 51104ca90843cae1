"""What evidence a caller asks for; the request runs the engine's evidence pass."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from .result import MAP_DECIMALS, TagEvidence
from .run import forward_with_evidence

if TYPE_CHECKING:
    from ..inference.engine import ImagePrediction, TaggingEngine
    from ..inference.images import ImageSource
    from ..progress import ProgressFn

__all__ = ["EvidenceRequest", "TagEvidence", "MAP_DECIMALS", "evidence_for"]


@dataclass(frozen=True)
class EvidenceRequest:
    """Which tags of each image get a map.

    `tags`: these tag names for every image (in this order), whether they fired or not.
    `select`: a function of one image's probabilities (K,) (the engine's vocabulary order)
    returning the vocabulary positions to map, e.g. a `ThresholdPolicy`'s fired tags.
    Neither: the tags that fire at the vocabulary's class thresholds.
    """

    tags: tuple[str, ...] | None = None
    select: Callable[[np.ndarray], Sequence[int]] | None = None

    def __post_init__(self) -> None:
        if self.tags is not None and self.select is not None:
            raise ValueError("name tags or give a select function, not both")
        if self.tags is not None:
            if isinstance(self.tags, str):
                raise ValueError("tags must be a sequence of tag names, not one string")
            object.__setattr__(self, "tags", tuple(dict.fromkeys(str(t) for t in self.tags)))

    @classmethod
    def for_fired(cls, policy: Any, thresholds: np.ndarray) -> EvidenceRequest:
        """Maps for exactly the tags a `ThresholdPolicy` fires at `thresholds` (what a row or label lists)."""
        return cls(select=lambda probs: policy.fired(probs, thresholds))

    def forward(self, model: Any, batch: Any, **engine_state: Any) -> tuple[Any, Any, list[list[TagEvidence]]]:
        """The engine's batch forward with these maps: `TaggingEngine.predict_prepared` calls this.

        The request runs the pass itself so that `ram_model.inference` never imports this
        package (evidence sits above inference in the layers).
        """
        return forward_with_evidence(model, batch, request=self, **engine_state)


def evidence_for(engine: TaggingEngine, images: Iterable[ImageSource], tags: Sequence[str] | None = None,
                 progress: ProgressFn | None = None) -> list[ImagePrediction]:
    """`engine`'s predictions with evidence maps for `tags` (None: the tags fired at the class thresholds)."""
    return engine.predict(images, progress=progress, evidence=EvidenceRequest(tags=tags))
