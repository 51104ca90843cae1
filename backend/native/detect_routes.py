"""/v1/detect: boxes (and masks) for each image's RAM tags, from the server's one detector (+ segmenter).

Same inputs as /v1/tag (uploads, then allowed server-side paths); one result per input,
a bad image is `ok: false` with its `error`, never a failed request. Boxes are
[x0, y0, x1, y1] normalised to 0..1; masks (`masks=true`) are COCO-style uncompressed RLE
`{"size": [h, w], "counts": [...]}` (ram_model.grounding.rle).
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from ..serving.grounding import DetectorNotLoaded, require_grounding
from ..state import AppState, get_state
from .routes import answers, read_inputs, request_policy

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["native"])


class DetectionOut(BaseModel):
    label: str
    score: float
    box: list[float]
    mask: dict[str, Any] | None = None


class DetectResult(BaseModel):
    source: str
    ok: bool
    error: str | None = None
    tags: list[str] = []
    width: int | None = None
    height: int | None = None
    detections: list[DetectionOut] = []


class DetectResponse(BaseModel):
    model_version: str
    random_weights: bool
    detector: dict[str, Any]
    segmenter: dict[str, Any] | None = None
    results: list[DetectResult]


@router.post("/detect", response_model=DetectResponse, response_model_exclude_none=True)
async def detect(
    state: Annotated[AppState, Depends(get_state)],
    images: Annotated[list[UploadFile] | None, File(description="image files, in order")] = None,
    paths: Annotated[list[str] | None, Form(description="server-side paths under --allowed-root, after the files")] = None,
    masks: Annotated[bool, Form(description="add a SAM mask (RLE) per box; needs --segmenter")] = False,
    threshold: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    top_k: Annotated[int | None, Form(ge=1)] = None,
) -> DetectResponse:
    service = require_grounding(state.grounding)
    if masks and not service.has_segmenter:
        raise DetectorNotLoaded("masks were asked for but the server runs no segmenter; start it with --segmenter")
    sources, inputs, errors = await read_inputs(state, images, paths)
    policy = request_policy(state.policy, threshold, top_k)
    to_run = [i for i, item in enumerate(inputs) if item is not None]
    found = await run_in_threadpool(service.run, [inputs[i] for i in to_run], segment=masks, policy=policy)
    by_position = dict(zip(to_run, found))
    results: list[DetectResult] = []
    for source, r, error in answers(sources, by_position, errors):
        if r is None:
            results.append(DetectResult(source=source, ok=False, error=error))
            continue
        width, height = r.size
        results.append(DetectResult(source=source, ok=True, tags=[t.name for t in r.tags], width=width, height=height,
                                    detections=[DetectionOut(**d.to_dict()) for d in r.detections]))
    info = service.info()
    return DetectResponse(model_version=service.model_version, random_weights=info["random_weights"],
                          detector=info["detector"], segmenter=info["segmenter"], results=results)
