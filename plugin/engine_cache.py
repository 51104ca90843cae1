"""Where the model runs: the shared server when its URL is configured, else one engine per process.

This is the single switch between the two. Both sides hand back a `Tagger` with the same
`predict` contract as `ram_model.TaggingEngine`, so the jobs never know which one they got.
Loading a RAM++ checkpoint takes tens of seconds, so the in-process engine is built once
per process and configuration (the delegated-operation worker keeps it across runs).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any, Protocol

from plugin.params import ModelParams
from ram_model import EngineConfig, ImagePrediction, TaggingEngine, TagVocabulary

__all__ = ["Tagger", "clear_cache", "engine_config", "get_engine", "get_tagger"]

ProgressFn = Callable[[int, int], None]


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
    """An in-process `TaggingEngine`, shared by every run in this process."""

    def __init__(self, engine: TaggingEngine) -> None:
        self._engine = engine

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
        return self._engine.predict(images, with_embedding=with_embedding, progress=progress)

    def predict_iter(self, images: Iterable[Any], *, with_embedding: bool = False) -> Iterator[ImagePrediction]:
        return self._engine.predict_iter(images, with_embedding=with_embedding)


def engine_config(model: ModelParams) -> EngineConfig:
    """The EngineConfig for these options, built the way every ram-annotate command builds it."""
    return model.options.engine_config()


_lock = threading.Lock()


@lru_cache(maxsize=2)
def _engine_for(config: EngineConfig) -> TaggingEngine:
    return TaggingEngine.from_config(config)


def _remote_for(model: ModelParams) -> Tagger:
    """Not cached: asking the server each time means a restarted server's new model is noticed."""
    from plugin.remote import RemoteTagger

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


def clear_cache() -> None:
    """Forget loaded engines (tests; freeing memory after a model change)."""
    with _lock:
        _engine_for.cache_clear()
