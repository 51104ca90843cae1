"""Label-field labels that map onto no RAM tag become open-set classes of a Tag with RAM run (issue 20).

Like the Label Studio backend (`backend.labelstudio.open_set_labels`): the run's vocabulary is extended
to RAM's K tags followed by the unmapped labels, so the label mapping, thresholds, run
record and written tags all keep working on index arrays, now of K + E. The labels are
scored through CLIP's text encoder and RAM's head (`TaggingEngine.open_set_view`) with the
official 0.5 threshold. Only an in-process engine can (a server computes its own classes);
without a loadable text encoder the run is as before and the result says why.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plugin.models.engine_cache import LocalTagger
from ram_model import TagVocabulary
from ram_model.errors import RamModelError
from ram_model.model.restrict import expand_probs
from ram_model.text import OPEN_SET_THRESHOLD

__all__ = ["OpenSetTagger", "open_set_tagger"]


class OpenSetTagger(LocalTagger):
    """A local tagger over RAM's vocabulary plus open-set labels; computes `ram_classes` and those labels."""

    def __init__(self, engine, ram_classes: Sequence[str], open_names: Sequence[str]) -> None:
        full = engine.vocab
        self._engine = engine
        self._computing = engine.open_set_view([*ram_classes, *open_names])
        self._vocab = TagVocabulary(
            (*full.names, *open_names), (*full.names_zh, *([""] * len(open_names))),
            np.concatenate([full.thresholds, np.full(len(open_names), OPEN_SET_THRESHOLD, np.float32)]))
        self._columns = np.array([full.index_of(n) for n in ram_classes]
                                 + [len(full) + i for i in range(len(open_names))], dtype=np.int64)
        self.open_set_classes = tuple(open_names)

    @property
    def vocab(self) -> TagVocabulary:
        return self._vocab

    @property
    def model_version(self) -> str:
        return self._computing.model_version

    def describe(self) -> dict:
        return {**super().describe(), "open_set_classes": list(self.open_set_classes),
                "random_weights": self._computing.random_weights}

    def _over_vocabulary(self, prediction):
        if prediction.probs is not None:
            prediction.probs = expand_probs(prediction.probs, self._columns, len(self._vocab))
        return prediction


def open_set_tagger(tagger, ram_classes: Sequence[str], open_names: Sequence[str]) -> tuple[object, str | None]:
    """(the tagger scoring `open_names` too, None) or (`tagger` unchanged, why not)."""
    if not isinstance(tagger, LocalTagger):
        return tagger, "open-set labels need the in-process model (the server computes RAM's tags only)"
    try:
        tagger._engine.text_encoder()
    except RamModelError as e:
        return tagger, str(e)
    return OpenSetTagger(tagger._engine, ram_classes, open_names), None
