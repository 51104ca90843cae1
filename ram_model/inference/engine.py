"""The inference engine: images in, per-class probabilities (and embeddings) out.

One engine holds one model on one device. Decoding and resizing run on a thread pool a few
batches ahead of the model (`ram_model.inference.pipeline`), producing uint8 images that are stacked,
copied to the device and normalised there, so the accelerator waits for images as little as
possible; a bad image becomes an error on its own result and never stops the run. Long runs
stream one `predict_iter` so the look-ahead never restarts and results are never all held.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import threading
from collections.abc import Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from .compiled import CompiledForward
from ..model.config import EngineConfig
from ..progress import ProgressFn
from ..errors import ConfigError, ImageLoadError, is_out_of_memory
from .gpu_decode import EncodedJpeg, GpuJpegDecoder
from .images import ImageSource, describe_source, load_image
from ..weights.model_files import LoadedModel, load_model
from ..model.class_rows import ClassRows, pack_rows
from ..text.open_classes import OPEN_SET_THRESHOLD, choose_class_texts, reduce_for_ram, rows_digest
from .pipeline import default_decode_workers, prefetch_batches
from .precision import autocast_context, cast_for_inference, inference_dtype, precision_name, precision_tag
from ..model.preprocess import normalize, to_uint8_tensor
from ..model.vocab import TagVocabulary

__all__ = ["TaggingEngine", "ImagePrediction", "decode_for_model", "resolve_device"]



@dataclass
class ImagePrediction:
    """The result for one input image: probabilities over the vocabulary, or why there are none."""

    source: str
    probs: np.ndarray | None = None
    embedding: np.ndarray | None = None
    error: str | None = None
    evidence: list[Any] | None = None  # ram_model.evidence.TagEvidence per mapped tag, when asked for

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


def decode_for_model(source: ImageSource, image_size: int, config: EngineConfig) -> torch.Tensor | ImageLoadError:
    """One image -> the uint8 [3, S, S] tensor the model takes, or the error as a value (never raises).

    Module-level so that a process without the model (a Ray decode task, `ram_model.scale`)
    decodes exactly as the engine's own decode threads do.
    """
    try:
        img = load_image(source, exif_transpose=config.exif_transpose, max_pixels=config.max_image_pixels,
                         draft_size=image_size if config.fast_jpeg_decode else None)
        return to_uint8_tensor(img, image_size)
    except ImageLoadError as e:
        return e
    except Exception as e:  # noqa: BLE001 - one odd file must not end a long run
        return ImageLoadError(f"{describe_source(source)}: {type(e).__name__}: {e}")


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
        workers = default_decode_workers() if config.decode_workers is None else config.decode_workers
        self.decode_workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ram-decode") if workers else None
        self._gpu_decoder = GpuJpegDecoder.create(
            self.device, self.image_size, exif_transpose=config.exif_transpose,
            max_pixels=config.max_image_pixels) if config.gpu_decode else None
        self._select(config)

    @classmethod
    def from_config(cls, config: EngineConfig) -> "TaggingEngine":
        resolve_device(config.device)  # fail before the (slow) load
        return cls(load_model(config), config)

    # -- restricted vocabulary (issue 13) -----------------------------------------------
    def _select(self, config: EngineConfig) -> None:
        if not config.wants_open_set:
            self._restrict(config.classes)
            return
        from ..text import read_descriptions

        descriptions = read_descriptions(config.descriptions) if config.descriptions else {}
        names = config.classes or tuple(descriptions)
        if not names:
            raise ConfigError("--open-set needs --classes naming the classes (or --descriptions FILE)")
        self._open(names, descriptions, open_set=config.open_set)

    def _restrict(self, classes: Sequence[str] | None) -> None:
        """Compute only `classes` (None: all): the head has no attention between class
        queries, so their scores are the full model's. The index tensor is built once, on the
        engine's device, and handed to every forward."""
        full = self._loaded.vocab
        self._open_classes: tuple[str, ...] = ()
        self._open_digest: str | None = None
        self._text_random = False
        if classes is None:
            self._vocab, self._class_index = full, None
            return
        try:
            self._vocab = full.subset(classes)
        except ConfigError as e:
            raise ConfigError(f"{e}; pass --open-set to score names that are not RAM tags") from None
        self._class_index = torch.tensor([full.index_of(n) for n in self._vocab.names],
                                         dtype=torch.int64, device=self.device)

    def restricted(self, classes: Sequence[str] | None) -> "TaggingEngine":
        """A view computing only `classes` (None: the whole vocabulary).

        It shares this engine's model object, forward lock and decode pool (no reload, no
        copy of the weights), so views for many projects cost only their index tensor.
        `model_version` is unchanged: the scores are the full model's.
        """
        view = copy.copy(self)
        view.config = dataclasses.replace(self.config, classes=None if classes is None else tuple(classes),
                                          open_set=False, descriptions=None)
        view._restrict(view.config.classes)
        return view

    # -- open-set classes (issue 20) -----------------------------------------------------
    def _open(self, names: Sequence[str], descriptions: dict[str, Sequence[str]], *, open_set: bool) -> None:
        """Names that are RAM tags keep their own rows; the others (and any with descriptions)
        are scored from CLIP embeddings of their descriptions or of the prompt templates."""
        from ..text import template_descriptions
        from ..text.cache import encode_descriptions

        texts = choose_class_texts(names, self._loaded.vocab, descriptions, open_set=open_set,
                                   templates=template_descriptions)
        wanted = {n: t for n, t in texts.items() if t is not None}
        if not wanted:
            self._restrict(tuple(texts))
            return
        encoder = self.text_encoder()
        groups = encode_descriptions(encoder, list(wanted.values()), cache_dir=self.config.cache_dir)
        encoded = dict(zip(wanted, groups))
        self._use_rows({n: encoded.get(n) for n in texts}, digest=rows_digest(encoder.identity, texts),
                       text_random=encoder.random_weights)

    def _use_rows(self, embeddings: "dict[str, torch.Tensor | None]", *, digest: str, text_random: bool) -> None:
        full = self._loaded.vocab
        label_embed = self.model.label_embed.detach()
        per_class = label_embed.shape[0] // len(full)
        groups, names_zh, thresholds, open_names = [], [], [], []
        for name, rows in embeddings.items():
            if rows is None:  # a RAM tag: its own label_embed rows, so its score is the closed-set one
                i = full.index_of(name)
                groups.append(label_embed[i * per_class:(i + 1) * per_class].cpu())
                names_zh.append(full.names_zh[i])
                thresholds.append(float(full.thresholds[i]))
                continue
            if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] != label_embed.shape[1]:
                raise ConfigError(f"class {name!r}: embeddings must be [n >= 1, {label_embed.shape[1]}], "
                                  f"not {list(rows.shape)}")
            rows = rows.float()
            groups.append((reduce_for_ram(rows) if self.variant == "ram" else rows).to(label_embed.dtype))
            names_zh.append("")
            thresholds.append(OPEN_SET_THRESHOLD)
            open_names.append(name)
        self._vocab = TagVocabulary(tuple(embeddings), tuple(names_zh), np.asarray(thresholds, dtype=np.float32))
        self._class_index = pack_rows(groups).to(self.device, label_embed.dtype)
        self._open_classes = tuple(open_names)
        self._open_digest = digest
        self._text_random = text_random

    def with_class_embeddings(self, embeddings: "dict[str, torch.Tensor | None]", *,
                              identity: str = "embeddings") -> "TaggingEngine":
        """A view scoring these classes: None keeps a RAM tag's own rows; a [n, 512] tensor
        holds a class's description embeddings (any n; RAM averages them into one row).

        The lower half of `open_set_view`, for callers that encoded descriptions themselves.
        """
        view = copy.copy(self)
        view.config = dataclasses.replace(self.config, classes=tuple(embeddings), open_set=True, descriptions=None)
        h = hashlib.sha256(identity.encode())
        for name, rows in embeddings.items():
            h.update(b"\x00" + name.encode())
            if rows is not None:
                h.update(rows.detach().float().cpu().contiguous().numpy().tobytes())
        view._use_rows(dict(embeddings), digest=h.hexdigest()[:8], text_random=False)
        return view

    def open_set_view(self, classes: Sequence[str], descriptions: dict[str, Sequence[str]] | None = None
                      ) -> "TaggingEngine":
        """A view computing `classes`: RAM tags as `restricted` does, other names as open-set classes
        (their `descriptions`, else the prompt templates). Shares the model like `restricted`."""
        view = copy.copy(self)
        view.config = dataclasses.replace(self.config, classes=tuple(classes), open_set=True, descriptions=None)
        view._open(view.config.classes or (), dict(descriptions or {}), open_set=True)
        return view

    def text_encoder(self):
        """The CLIP text encoder (`ram_model.text`), loaded on first use and shared per process."""
        from ..text import load_text_encoder

        return load_text_encoder(self.config.text_encoder, cache_dir=self.config.cache_dir)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 512) float32 unit CLIP text embeddings, comparable with RAM++'s image embeddings."""
        return self.text_encoder().encode(list(texts)).numpy()

    @property
    def open_set_classes(self) -> tuple[str, ...]:
        """The computed classes scored from text embeddings rather than RAM's own rows."""
        return self._open_classes

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The computed tag names, or None when the whole vocabulary is computed."""
        return None if self._class_index is None else self._vocab.names

    # -- what integrations read -------------------------------------------------------
    @property
    def vocab(self) -> TagVocabulary:
        """The computed vocabulary: the subset's names, Chinese names and thresholds when restricted."""
        return self._vocab

    @property
    def variant(self) -> str:
        return self._loaded.variant

    @property
    def model_version(self) -> str:
        """The checkpoint's version, with `-bf16` / `-fp16` when inference runs in low precision;
        with open-set classes also a digest of their text encoder and descriptions (their scores
        depend on both), and `random-` when that encoder is random.

        `--precision auto` runs bf16 on AMX CPUs and fp32 elsewhere; their scores differ by
        ~1e-3, so the precision is part of the version every output carries (JSONL rows, the
        FiftyOne labels and run record, Label Studio predictions) and the resume rules never
        mix the two.
        """
        version = self._loaded.model_version + precision_tag(self._autocast)
        if self._open_digest is None:
            return version
        version = f"{version}-open{self._open_digest}"
        return version if not self._text_random or version.startswith("random-") else f"random-{version}"

    @property
    def precision(self) -> str:
        """'float32', 'bfloat16' or 'float16': what inference runs in."""
        return precision_name(self._autocast)

    @property
    def random_weights(self) -> bool:
        """True for checkpoints made by ram_model.weights.testing, or with a random text encoder
        scoring open-set classes: their tags mean nothing."""
        return self._loaded.random_weights or self._text_random

    @property
    def image_size(self) -> int:
        return self._loaded.swin.image_res

    @property
    def load_report(self):
        return self._loaded.report

    def info(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "num_classes": len(self.vocab),  # computed classes (the subset when restricted)
            "vocabulary_size": len(self._loaded.vocab),
            "restricted": self._class_index is not None,
            "open_set_classes": list(self._open_classes),
            "image_size": self.image_size,
            "device": str(self.device),
            "precision": self.precision,
            "compiled": self._compiled is not None and self._compiled.active,
            "batch_size": self.batch_size,
            "decode_workers": self.decode_workers,
            "gpu_decode": self._gpu_decoder is not None,
            "fast_jpeg_decode": self.config.fast_jpeg_decode,
            "model_version": self.model_version,
            "checkpoint": str(self._loaded.path),
            "random_weights": self.random_weights,
        }

    # -- inference --------------------------------------------------------------------
    def _prepare(self, source: ImageSource) -> torch.Tensor | EncodedJpeg | ImageLoadError:
        """Runs in a decode thread: a uint8 [3, S, S] image (or a JPEG's bytes for the GPU), never raises."""
        if self._gpu_decoder is not None:
            encoded = self._gpu_decoder.encoded(source)
            if encoded is not None:
                return encoded
        return self._decode_with_pillow(source)

    def _decode_with_pillow(self, source: ImageSource) -> torch.Tensor | ImageLoadError:
        return decode_for_model(source, self.image_size, self.config)

    def _forward(self, batch: torch.Tensor, classes: torch.Tensor | ClassRows | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sigmoid probabilities, pooled embeddings) as float32 on the CPU; on CUDA out-of-memory,
        halve the batch and retry. `classes`: class indices on the device, None for all."""
        try:
            with torch.inference_mode(), autocast_context(self.device, self._autocast):
                x = batch.to(self.device, non_blocking=True)
                compiled = self._compiled if not isinstance(classes, ClassRows) else None  # eager for own rows
                run = compiled or self.model.forward_with_embedding
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

    def _decode_on_device(self, prepared: list[Any]) -> list[torch.Tensor | ImageLoadError]:
        """GPU-decode the batch's JPEG bytes; Pillow for any nvJPEG refused. Every image ends on the device."""
        assert self._gpu_decoder is not None
        jpegs = [i for i, p in enumerate(prepared) if isinstance(p, EncodedJpeg)]
        decoded = self._gpu_decoder.decode([prepared[i] for i in jpegs])
        out = list(prepared)
        for i, image in zip(jpegs, decoded):
            out[i] = image if image is not None else self._decode_with_pillow(prepared[i].source)
        return [p.to(self.device) if isinstance(p, torch.Tensor) else p for p in out]

    def _to_model_batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        """uint8 [3, S, S] images -> the normalised float32 [B, 3, S, S] batch on the engine's device.

        Stacking uint8 costs a tenth of stacking float32 and copies a quarter of the bytes;
        on CUDA the stack lands in pinned memory so the copy runs asynchronously.
        """
        if images[0].device.type == "cpu" and self.device.type != "cpu":
            size = (len(images), *images[0].shape)
            host = torch.empty(size, dtype=torch.uint8, pin_memory=self.device.type == "cuda")
            torch.stack(images, out=host)
            batch = host.to(self.device, non_blocking=True)
        else:
            batch = torch.stack(images)
        return normalize(batch)

    def predict_iter(self, images: Iterable[ImageSource], *, with_embedding: bool = False,
                     progress: ProgressFn | None = None, evidence: Any = None) -> Iterator[ImagePrediction]:
        """Results in input order, a batch at a time, as they are ready.

        `evidence`: a `ram_model.evidence.EvidenceRequest` to also compute per-tag evidence
        maps (`ImagePrediction.evidence`); None (the default) runs plain tagging only. The
        request runs its own forward (`request.forward(model, batch, ...)`), so the engine never
        imports `ram_model.evidence` (it sits above `inference` in the layers).

        `images` may be any iterable, read lazily: a generator of a million paths is never
        materialised, and at most `prefetch_batches` + 1 batches are decoded or held at once.
        `progress(done, total)` follows each batch; total is None when `images` has no length.
        """
        total = len(images) if isinstance(images, Sized) else None
        done = 0
        batches = prefetch_batches(images, self.batch_size, self._prepare, self._pool, self.config.prefetch_batches)
        for sources, prepared in batches:
            if self._gpu_decoder is not None:
                prepared = self._decode_on_device(prepared)
            results = self.predict_prepared(sources, prepared, with_embedding=with_embedding, evidence=evidence)
            done += len(sources)
            if progress is not None:
                progress(done, total)
            yield from results

    def predict_prepared(self, sources: Sequence[ImageSource], prepared: Sequence[torch.Tensor | ImageLoadError],
                         *, with_embedding: bool = False, evidence: Any = None) -> list[ImagePrediction]:
        """One model batch from images already decoded by `decode_for_model` (errors pass through).

        `predict_iter` calls this per batch; a Ray actor (`ram_model.scale`) calls it on
        images decoded in other processes, so both run the very same forward.
        """
        results = [ImagePrediction(describe_source(s)) for s in sources]
        good = [i for i, p in enumerate(prepared) if isinstance(p, torch.Tensor)]
        for result, p in zip(results, prepared):
            if isinstance(p, ImageLoadError):
                result.error = str(p)
        if good:
            batch = self._to_model_batch([prepared[i] for i in good])
            with self._lock:
                if evidence is None:
                    probs, pooled = self._forward(batch, self._class_index)
                else:
                    probs, pooled, maps = evidence.forward(self.model, batch, device=self.device,
                                                           class_index=self._class_index, vocab=self.vocab,
                                                           autocast_dtype=self._autocast)
            for row, i in enumerate(good):
                results[i].probs = probs[row].numpy()
                if evidence is not None:
                    results[i].evidence = maps[row]
                if with_embedding:
                    results[i].embedding = pooled[row].numpy()
        return results

    def predict(self, images: Iterable[ImageSource], *, with_embedding: bool = False,
                progress: ProgressFn | None = None, evidence: Any = None) -> list[ImagePrediction]:
        """Probabilities for every class of every image, in input order (all at once: see `predict_iter`)."""
        if not isinstance(images, Sized):
            images = list(images)  # progress gets its total
        return list(self.predict_iter(images, with_embedding=with_embedding, progress=progress,
                                      evidence=evidence))

    def tag_embeddings(self) -> np.ndarray:
        """(K, 512) float32: each tag's text embedding, comparable with `predict(..., with_embedding=True)`."""
        with self._lock, torch.inference_mode():
            if isinstance(self._class_index, ClassRows):
                return self._class_index.class_means().float().cpu().numpy()
            rows = self.model.tag_embeddings()
            if self._class_index is not None:
                rows = rows.index_select(0, self._class_index)
            return rows.float().cpu().numpy()

    def predict_proba(self, images: Sequence[ImageSource]) -> np.ndarray:
        """(N, K) float32 probabilities; raises `ImageLoadError` if any image is bad."""
        results = self.predict(images)
        for r in results:
            if r.error is not None:
                raise ImageLoadError(r.error)
        if not results:
            return np.zeros((0, len(self.vocab)), dtype=np.float32)
        return np.stack([r.probs for r in results]).astype(np.float32, copy=False)
