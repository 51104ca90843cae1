"""Where the model runs: the shared server when its URL is configured, else one engine per process.

This is the single switch between the two. Both sides hand back a `Tagger` with the same
`predict` contract as `ram_model.TaggingEngine`, so the jobs never know which one they got.
Loading a RAM++ checkpoint takes tens of seconds, so the in-process engine is built once
per process and configuration (the delegated-operation worker keeps it across runs).
"""
from __future__ import annotations

import threading
from contextlib import closing
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from plugin.params import ModelParams
from ram_model import EngineConfig, ImagePrediction, TaggingEngine, TagVocabulary
from ram_model.model.restrict import expand_probs, worth_restricting
from ram_model.progress import ProgressFn

__all__ = ["Tagger", "computing_only", "engine_config", "get_engine", "get_tagger"]


class Tagger(Protocol):
    """What the jobs need from a model, wherever it runs."""

    @property
    def vocab(self) -> TagVocabulary: ...

    @property
    def model_version(self) -> str: ...

    def describe(self) -> dict[str, Any]:
        """Checkpoint, variant and location, recorded with every run."""
        ...

    def predict(self, images: Sequence[Any], *, with_embedding: bool = False,
                progress: ProgressFn | None = None) -> list[ImagePrediction]: ...

    def predict_iter(self, images: Iterable[Any], *, with_embedding: bool = False) -> Iterator[ImagePrediction]:
        """Results in input order as they are ready; long jobs stream one of these rather than
        calling `predict` per chunk, so the engine's decode look-ahead never restarts."""
        ...


class LocalTagger:
    """An in-process `TaggingEngine`, shared by every run in this process.

    With `classes`, only those are computed (a restricted view sharing the engine's model);
    probabilities still come back over the whole vocabulary, NaN for the classes left out,
    so thresholds and run records keep their meaning.
    """

    supports_evidence = True  # evidence maps need the model's gradients: in-process only

    def __init__(self, engine: TaggingEngine, classes: Sequence[str] | None = None) -> None:
        self._engine = engine
        self._computing = engine if classes is None else engine.restricted(classes)
        self._columns = None if classes is None else np.array(
            [engine.vocab.index_of(n) for n in self._computing.vocab.names], dtype=np.int64)

    @property
    def computed_classes(self) -> tuple[str, ...] | None:
        """The tags computed, or None for the whole vocabulary."""
        return None if self._columns is None else self._computing.vocab.names

    @property
    def vocab(self) -> TagVocabulary:
        return self._engine.vocab

    @property
    def model_version(self) -> str:
        return self._engine.model_version

    def describe(self) -> dict[str, Any]:
        info = self._engine.info()
        return {
            "where": "in-process",
            "checkpoint": info["checkpoint"],
            "variant": info["variant"],
            "random_weights": info["random_weights"],
        }

    def predict(self, images: Sequence[Any], *, with_embedding: bool = False,
                progress: ProgressFn | None = None) -> list[ImagePrediction]:
        predictions = self._computing.predict(images, with_embedding=with_embedding, progress=progress)
        return [self._over_vocabulary(p) for p in predictions]

    def predict_iter(self, images: Iterable[Any], *, with_embedding: bool = False,
                     evidence: Any = None) -> Iterator[ImagePrediction]:
        """`evidence`: a `ram_model.evidence.EvidenceRequest` whose `select` reads whole-vocabulary probabilities."""
        request = self._computing_request(evidence)
        with closing(self._computing.predict_iter(images, with_embedding=with_embedding,
                                                  evidence=request)) as stream:
            for prediction in stream:
                yield self._over_vocabulary(prediction)

    def _computing_request(self, evidence: Any) -> Any:
        """The request in the computing view's class positions (the same as the caller's unless restricted)."""
        if evidence is None or self._columns is None or evidence.select is None:
            return evidence
        columns, size = self._columns, len(self._engine.vocab)
        position = {int(c): i for i, c in enumerate(columns)}
        select = evidence.select
        return type(evidence)(select=lambda probs: [position[int(i)] for i in select(expand_probs(probs, columns, size))
                                                    if int(i) in position])

    def _over_vocabulary(self, prediction: ImagePrediction) -> ImagePrediction:
        if self._columns is not None and prediction.probs is not None:
            prediction.probs = expand_probs(prediction.probs, self._columns, len(self._engine.vocab))
            for item in prediction.evidence or ():
                item.index = int(self._columns[item.index])
        return prediction


def computing_only(tagger: Tagger, classes: Sequence[int]) -> Tagger:
    """`tagger` computing only `classes` (indices of its vocabulary), when that is worth it.

    A tagger on the shared server is returned as it is: the server computes every class.
    """
    if not isinstance(tagger, LocalTagger) or not worth_restricting(classes, len(tagger.vocab)):
        return tagger
    names = [tagger.vocab.names[i] for i in sorted(set(classes))]
    return LocalTagger(tagger._engine, names)


def engine_config(model: ModelParams) -> EngineConfig:
    """The EngineConfig for these options, built the way every ram-annotate command builds it."""
    return model.options.engine_config()


_lock = threading.Lock()


@lru_cache(maxsize=2)
def _engine_for(config: EngineConfig) -> TaggingEngine:
    return TaggingEngine.from_config(config)


def _remote_for(model: ModelParams) -> Tagger:
    """Not cached: asking the server each time means a restarted server's new model is noticed."""
    from plugin.models.remote import RemoteTagger

    assert model.server_url is not None
    return RemoteTagger(model.server_url, auth=model.server_auth)


def get_engine(config: EngineConfig) -> TaggingEngine:
    """The in-process engine for this configuration, loaded once per process."""
    with _lock:  # two operators starting together must not load the checkpoint twice
        return _engine_for(config)


def get_tagger(model: ModelParams) -> Tagger:
    """The model these options name: remote if a server URL is set, else the cached local engine."""
    if model.server_url:
        return _remote_for(model)
    return LocalTagger(get_engine(engine_config(model)))
