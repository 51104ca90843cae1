"""What runs inside the cluster: the decode task, the model actor, and the one-off model probe.

Per-image failures never leave these functions as exceptions: Ray Data aborts the whole
dataset on the first failed block (`DataContext.max_errored_blocks` is 0), so a corrupt
file is an `error` string on its own row, exactly as `TaggingEngine.predict_iter` reports it.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np

from ram_model.model.config import EngineConfig
from ram_model.model.vocab import TagVocabulary

__all__ = ["ModelFacts", "FaultHook", "describe_model", "decode_batch", "TagActor"]


@dataclass(frozen=True)
class ModelFacts:
    """What the driver needs to write result lines and check resume, without holding the model."""

    model_version: str
    random_weights: bool
    vocab: TagVocabulary
    image_size: int
    variant: str
    open_set_classes: tuple[str, ...] = ()  # classes scored from text embeddings (marked in the rows)


@dataclass(frozen=True)
class FaultHook:
    """Test-only faults, read from the driver's environment and handed to each actor.

    `RAM_ANNOTATE_TEST_RAY_EXIT_AFTER=N` with `RAM_ANNOTATE_TEST_RAY_EXIT_MARKER=FILE`: the
    first actor to finish N batches creates FILE and kills its own process (`os._exit`), once
    per FILE; `RAM_ANNOTATE_TEST_RAY_SLEEP_S=S`: every batch waits S seconds (a slow model).
    """

    exit_after: int | None = None
    marker: str | None = None
    sleep_s: float = 0.0

    @classmethod
    def from_env(cls) -> "FaultHook | None":
        exit_after = os.environ.get("RAM_ANNOTATE_TEST_RAY_EXIT_AFTER")
        sleep_s = float(os.environ.get("RAM_ANNOTATE_TEST_RAY_SLEEP_S", "0") or 0)
        if not exit_after and not sleep_s:
            return None
        return cls(int(exit_after) if exit_after else None, os.environ.get("RAM_ANNOTATE_TEST_RAY_EXIT_MARKER"),
                   sleep_s)

    def after_batch(self, done: int) -> None:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.exit_after is not None and self.marker and done >= self.exit_after:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return  # killed once already: the restarted actor runs on
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(1)


def _cpu_only(config: EngineConfig) -> EngineConfig:
    return dataclasses.replace(config, device="cpu", compile=False, gpu_decode=False)


def describe_model(config: EngineConfig) -> ModelFacts | str:
    """Runs once as a Ray task where the checkpoint is readable: the model's facts, or the
    error message (a missing checkpoint is a one-line error on the driver, not a traceback)."""
    from ram_model.inference.engine import TaggingEngine
    from ..errors import RamModelError

    try:
        engine = TaggingEngine.from_config(_cpu_only(config))
    except RamModelError as e:
        return str(e)
    return ModelFacts(engine.model_version, engine.random_weights, engine.vocab, engine.image_size, engine.variant,
                      engine.open_set_classes)


def decode_batch(batch: dict[str, np.ndarray], *, image_size: int, config: EngineConfig) -> dict[str, np.ndarray]:
    """A Ray Data task: read and decode each path exactly as the engine's decode threads do."""
    from ram_model.inference.engine import decode_for_model
    from ..errors import ImageLoadError

    paths = [str(p) for p in batch["path"]]
    images = np.zeros((len(paths), 3, image_size, image_size), dtype=np.uint8)
    errors = []
    for i, path in enumerate(paths):
        prepared = decode_for_model(path, image_size, config)
        if isinstance(prepared, ImageLoadError):
            errors.append(str(prepared))
        else:
            images[i] = prepared.numpy()
            errors.append("")
    return {"path": np.array(paths, dtype=object), "image": images, "error": np.array(errors, dtype=object)}


class TagActor:
    """One engine per actor process, loaded once; each call tags one Ray batch of decoded images.

    The batch is cut into the engine's own batch size before the forward, as `predict_iter`
    cuts its input, so results are the in-process run's (bitwise in fp32 at the same batching).
    """

    def __init__(self, config: EngineConfig, with_embedding: bool, fault: FaultHook | None = None) -> None:
        from ram_model.inference.engine import TaggingEngine

        self.engine = TaggingEngine.from_config(dataclasses.replace(config, decode_workers=0))
        self.with_embedding = with_embedding
        self.fault = fault
        self.batches = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from ..errors import ImageLoadError
        from ram_model.inference.pipeline import batched

        paths = [str(p) for p in batch["path"]]
        prepared = [ImageLoadError(str(err)) if err else torch.tensor(img)
                    for img, err in zip(batch["image"], batch["error"])]
        k = len(self.engine.vocab)
        probs = np.zeros((len(paths), k), dtype=np.float32)
        embeddings = np.zeros((len(paths), 512 if self.with_embedding else 0), dtype=np.float32)
        errors = []
        row = 0
        for chunk in batched(range(len(paths)), self.engine.batch_size):
            results = self.engine.predict_prepared([paths[i] for i in chunk], [prepared[i] for i in chunk],
                                                   with_embedding=self.with_embedding)
            for result in results:
                if result.error is None:
                    probs[row] = result.probs
                    if self.with_embedding:
                        embeddings[row] = result.embedding
                errors.append(result.error or "")
                row += 1
        self.batches += 1
        if self.fault is not None:
            self.fault.after_batch(self.batches)
        return {"path": np.array(paths, dtype=object), "probs": probs, "embedding": embeddings,
                "error": np.array(errors, dtype=object)}

