"""The inference engine: images in, per-class probabilities (and embeddings) out.

One engine holds one model on one device. Decoding and resizing run on a small thread
pool one batch ahead of the model, so the accelerator waits for images as little as
possible; a bad image becomes an error on its own result and never stops the run.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .compiled import CompiledForward
from .config import EngineConfig
from .errors import ConfigError, ImageLoadError, is_out_of_memory
from .images import ImageSource, describe_source, load_image
from .model_files import LoadedModel, load_model
from .precision import autocast_context, cast_for_inference, inference_dtype, precision_name
from .preprocess import to_model_input
from .vocab import TagVocabulary

__all__ = ["TaggingEngine", "ImagePrediction", "resolve_device"]

ProgressFn = Callable[[int, int], None]


@dataclass
class ImagePrediction:
    """The result for one input image: probabilities over the vocabulary, or why there are none."""

    source: str
    probs: np.ndarray | None = None
    embedding: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; a device that is not there is a ConfigError.

    Called before the checkpoint is read, so a wrong `--device` is one line at once rather
    than an error after a multi-gigabyte load.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine "
                              "(use --device cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} "
                              "CUDA device(s)")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"device {name!r} requested but Apple's MPS is not available on this machine")
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return device


class TaggingEngine:
    """Load once, then `predict` from any thread; forward passes are serialised by a lock."""

    def __init__(self, loaded: LoadedModel, config: EngineConfig) -> None:
        self.config = config
        self._loaded = loaded
        self.device = resolve_device(config.device)
        self._autocast = inference_dtype(config.precision, self.device)
        self.model = loaded.model.to(self.device)
        cast_for_inference(self.model, self._autocast, self.device)  # once, not per forward
        self._compiled = CompiledForward(self.model) if config.compile else None
        # On a 2-core CPU, batch 1 measured ~20% faster than batch 8 (bench/bench_engine.py).
        self.batch_size = config.batch_size or (1 if self.device.type == "cpu" else 32)
        self._lock = threading.Lock()
        # One decode pool for the engine's lifetime: the server calls predict once per
        # coalesced batch, and a pool per call would add thread start-up to every request.
        workers = config.decode_workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ram-decode") if workers else None

    @classmethod
    def from_config(cls, config: EngineConfig) -> "TaggingEngine":
        resolve_device(config.device)  # fail before the (slow) load
        return cls(load_model(config), config)

    # -- what integrations read -------------------------------------------------------
    @property
    def vocab(self) -> TagVocabulary:
        return self._loaded.vocab

    @property
    def variant(self) -> str:
        return self._loaded.variant

    @property
    def model_version(self) -> str:
        return self._loaded.model_version

    @property
    def random_weights(self) -> bool:
        """True for checkpoints made by ram_model.testing: their tags mean nothing."""
        return self._loaded.random_weights

    @property
    def image_size(self) -> int:
        return self._loaded.swin.image_res

    @property
    def load_report(self):
        return self._loaded.report

    def info(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "num_classes": len(self.vocab),
            "image_size": self.image_size,
            "device": str(self.device),
            "precision": precision_name(self._autocast),
            "compiled": self._compiled is not None and self._compiled.active,
            "batch_size": self.batch_size,
            "model_version": self.model_version,
            "checkpoint": str(self._loaded.path),
            "random_weights": self.random_weights,
        }

    # -- inference --------------------------------------------------------------------
    def _prepare(self, source: ImageSource) -> torch.Tensor | ImageLoadError:
        try:
            img = load_image(source, exif_transpose=self.config.exif_transpose,
                             max_pixels=self.config.max_image_pixels)
            return to_model_input(img, self.image_size)
        except ImageLoadError as e:
            return e
        except Exception as e:  # noqa: BLE001 - one odd file must not end a long run
            return ImageLoadError(f"{describe_source(source)}: {type(e).__name__}: {e}")

    def _forward(self, batch: torch.Tensor, classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(sigmoid probabilities, pooled embeddings) as float32 on the CPU; on CUDA out-of-memory,
        halve the batch and retry. `classes`: class indices on the device, None for all."""
        try:
            with torch.inference_mode(), autocast_context(self.device, self._autocast):
                x = batch.to(self.device, non_blocking=True)
                run = self._compiled or self.model.forward_with_embedding
                logits, pooled = run(x, classes)
                return torch.sigmoid(logits.float()).cpu(), pooled.float().cpu()
        except RuntimeError as e:
            if not is_out_of_memory(e) or batch.shape[0] == 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = batch.shape[0] // 2
            first, second = self._forward(batch[:half], classes), self._forward(batch[half:], classes)
            return torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]])

    def _decoded_chunks(self, images: Sequence[ImageSource], pool: ThreadPoolExecutor | None
                        ) -> Iterator[tuple[int, list[torch.Tensor | ImageLoadError]]]:
        """Yield (start, prepared items) per batch, decoding the next batch while the caller computes."""
        size = self.batch_size
        starts = range(0, len(images), size)

        def submit(start: int) -> list[Future] | list[torch.Tensor | ImageLoadError]:
            chunk = images[start:start + size]
            if pool is None:
                return [self._prepare(s) for s in chunk]
            return [pool.submit(self._prepare, s) for s in chunk]

        pending = submit(0) if len(images) else []
        for i, start in enumerate(starts):
            current = pending
            if i + 1 < len(starts):
                pending = submit(starts[i + 1])
            yield start, [f.result() if isinstance(f, Future) else f for f in current]

    def predict(self, images: Sequence[ImageSource], *, with_embedding: bool = False,
                progress: ProgressFn | None = None) -> list[ImagePrediction]:
        """Probabilities for every class of every image, in input order."""
        images = list(images)
        results = [ImagePrediction(describe_source(s)) for s in images]
        done = 0
        for start, prepared in self._decoded_chunks(images, self._pool):
            good = [i for i, p in enumerate(prepared) if isinstance(p, torch.Tensor)]
            for i, p in enumerate(prepared):
                if isinstance(p, ImageLoadError):
                    results[start + i].error = str(p)
            if good:
                batch = torch.stack([prepared[i] for i in good])  # type: ignore[misc]
                with self._lock:
                    probs, pooled = self._forward(batch)
                for row, i in enumerate(good):
                    results[start + i].probs = probs[row].numpy()
                    if with_embedding:
                        results[start + i].embedding = pooled[row].numpy()
            done += len(prepared)
            if progress is not None:
                progress(done, len(images))
        return results

    def tag_embeddings(self) -> np.ndarray:
        """(K, 512) float32: each tag's text embedding, comparable with `predict(..., with_embedding=True)`."""
        with self._lock, torch.inference_mode():
            return self.model.tag_embeddings().float().cpu().numpy()

    def predict_proba(self, images: Sequence[ImageSource]) -> np.ndarray:
        """(N, K) float32 probabilities; raises `ImageLoadError` if any image is bad."""
        results = self.predict(images)
        for r in results:
            if r.error is not None:
                raise ImageLoadError(r.error)
        if not results:
            return np.zeros((0, len(self.vocab)), dtype=np.float32)
        return np.stack([r.probs for r in results]).astype(np.float32, copy=False)
