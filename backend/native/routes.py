"""The native API for the FiftyOne plugin and scripts: /v1/tag and /v1/info.

Answers carry full-precision probabilities when asked (float32 values survive the
JSON round trip exactly), so a remote caller gets what `TaggingEngine.predict` gives
a local one.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from ram_model import ThresholdPolicy

from ..errors import BackendError, BadRequest, PayloadTooLarge
from .search_routes import index_name
from .search_routes import store_embeddings as keep_embeddings
from .schemas import InfoResponse, InfoVocabulary, NativeImageResult, NativeTag, NativeTagResponse
from ..serving.media import resolve_allowed_path
from ..state import AppState, get_state

__all__ = ["answers", "read_inputs", "request_policy", "router"]

router = APIRouter(prefix="/v1", tags=["native"])


@router.get("/info", response_model=InfoResponse)
async def info(state: AppState = Depends(get_state)) -> InfoResponse:
    """What a remote client needs to tag as the server does: the vocabulary travels along,
    so the FiftyOne plugin and scripts need no copy of the tag files."""
    thresholds = state.ram_thresholds
    vocab = state.engine.vocab
    return InfoResponse(
        variant=state.engine.variant,
        vocabulary_size=len(vocab),
        vocabulary=InfoVocabulary(names=list(vocab.names), names_zh=list(vocab.names_zh),
                                  thresholds=vocab.thresholds.tolist(), digest=vocab.digest),
        model_version=state.engine.model_version,
        device=str(state.engine.device),
        thresholds={
            "global_override": state.policy.threshold,
            "min": float(np.min(thresholds)) if len(thresholds) else None,
            "max": float(np.max(thresholds)) if len(thresholds) else None,
        },
        queue_depth=state.batcher.pending_images,
        max_queue=state.batcher.max_queue,
        max_batch_size=state.batcher.max_batch_size,
        coalesce=state.batcher.coalesce,
        open_set_classes=state.projects.open_set_classes(),
    )


@router.post("/tag", response_model=NativeTagResponse, response_model_exclude_none=True)
async def tag(
    state: Annotated[AppState, Depends(get_state)],
    images: Annotated[list[UploadFile] | None, File(description="image files, in order")] = None,
    paths: Annotated[list[str] | None, Form(description="server-side paths under --allowed-root, after the files")] = None,
    all_scores: Annotated[bool, Form()] = False,
    embedding: Annotated[bool, Form()] = False,
    threshold: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    top_k: Annotated[int | None, Form(ge=1)] = None,
    index: Annotated[str | None, Form(description="keep the embeddings in this /v1/search index")] = None,
    store_embeddings: Annotated[bool, Form(description="keep the embeddings in the `default` index")] = False,
) -> NativeTagResponse:
    """Tag uploaded images and/or files under the allowed roots; one result per input,
    uploads first. A bad image gets `ok: false` and an `error`, never a failed request.
    With `index` (or `store_embeddings`) each tagged image's embedding is kept for /v1/search."""
    keep_in = index_name(index, store_embeddings)
    sources, inputs, errors = await read_inputs(state, images, paths)

    to_run = [i for i, item in enumerate(inputs) if item is not None]
    predictions = await state.batcher.submit([inputs[i] for i in to_run],
                                             with_embedding=embedding or keep_in is not None)
    by_position = dict(zip(to_run, predictions))
    if keep_in is not None:
        kept = [(sources[i], inputs[i], p.embedding) for i, p in by_position.items()
                if p.error is None and p.embedding is not None]
        await run_in_threadpool(keep_embeddings, state, keep_in, kept, state.engine.model_version,
                                bool(getattr(state.engine, "random_weights", False)))

    policy = request_policy(state.policy, threshold, top_k)
    if policy is None:
        policy, thresholds = state.policy, state.ram_thresholds
    else:
        thresholds = policy.resolve(state.engine.vocab)
    vocab = state.engine.vocab
    results: list[NativeImageResult] = []
    for source, pred, error in answers(sources, by_position, errors):
        if pred is None:
            results.append(NativeImageResult(source=source, ok=False, error=error))
            continue
        tags = policy.select(pred.probs, vocab, thresholds)
        results.append(
            NativeImageResult(
                source=source,
                ok=True,
                tags=[NativeTag(index=t.index, name=t.name, name_zh=t.name_zh, score=t.score) for t in tags],
                probs=pred.probs.tolist() if all_scores else None,
                embedding=pred.embedding.tolist() if embedding and pred.embedding is not None else None,
            )
        )
    return NativeTagResponse(model_version=state.engine.model_version, results=results)


async def read_inputs(state: AppState, images: list[UploadFile] | None, paths: list[str] | None
                      ) -> tuple[list[str], list[bytes | str | None], dict[int, str]]:
    """The request's uploads (first) and allowed server-side paths: (names, inputs, errors by position).

    An input that cannot be read is None with its error, so the caller answers it as one
    failed result instead of failing the request (/v1/tag and /v1/detect share this). A request
    that gets this far is counted for /metrics (native requests and images)."""
    images = images or []
    paths = paths or []
    if not images and not paths:
        raise BadRequest("send at least one `images` file or `paths` entry (multipart/form-data)")
    if len(images) + len(paths) > state.settings.max_upload_images:
        raise PayloadTooLarge(f"at most {state.settings.max_upload_images} images per request")
    limit = state.settings.max_download_bytes
    sources: list[str] = []
    inputs: list[bytes | str | None] = []
    errors: dict[int, str] = {}
    for upload in images:
        if upload.size is not None and upload.size > limit:
            raise PayloadTooLarge(f"{upload.filename}: over the {limit}-byte limit")
        sources.append(upload.filename or f"upload-{len(sources)}")
        inputs.append(await upload.read())
    for path in paths:
        sources.append(path)
        try:
            inputs.append(str(await run_in_threadpool(resolve_allowed_path, path, state.settings.allowed_roots)))
        except BackendError as exc:
            if exc.code == "host_not_allowed" and not state.settings.allowed_roots:
                raise  # the whole feature is off: say so once, as a 403
            errors[len(inputs)] = exc.message
            inputs.append(None)
    state.counters.native_requests += 1
    state.counters.native_images += len(inputs)
    return sources, inputs, errors


def request_policy(policy: ThresholdPolicy, threshold: float | None, top_k: int | None) -> ThresholdPolicy | None:
    """`policy` with the request's `threshold` / `top_k` in place of its own; None when it sets neither."""
    if threshold is None and top_k is None:
        return None
    return dataclasses.replace(policy, threshold=threshold if threshold is not None else policy.threshold,
                               top_k=top_k if top_k is not None else policy.top_k)


def answers(sources: list[str], by_position: dict[int, Any], errors: dict[int, str]
            ) -> Iterator[tuple[str, Any | None, str | None]]:
    """Each input in request order: (source, its result, None), or (source, None, why it failed).

    `by_position` holds what the model gave the inputs that were read (a result with an
    `error` failed there); `errors` says why the others could not be read."""
    for i, source in enumerate(sources):
        result = by_position.get(i)
        if result is None or result.error is not None:
            yield source, None, errors.get(i) or result.error
        else:
            yield source, result, None
