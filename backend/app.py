"""The FastAPI application factory.

The engine is loaded once in the lifespan (or handed in by tests and benchmarks) and
shared by every route through `get_state`; nothing is loaded per request.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ram_model import TaggingEngine, ThresholdPolicy

from .auth import install_basic_auth
from .serving.batcher import AsyncBatcher
from .errors import install_error_handlers
from .limits import install_body_limit
from .serving.grounding import build_grounding, region_source_version
from .serving.label_binding import LabelBinding
from .serving.media import MediaFetcher
from .serving.projects import Projects
from .labelstudio.routes import router as ls_router
from .labelstudio.version_sync import VersionSync
from .native.detect_routes import router as detect_router
from .native.routes import router as native_router
from .native.search_routes import router as search_router
from .training.model_routes import router as model_router
from .training.routes import router as train_router
from .training.threshold_routes import router as threshold_router
from .settings import Settings
from .state import AppState
from .store import open_store
from .training.manager import TrainingManager

__all__ = ["create_app"]

_log = logging.getLogger("backend.app")


def _load_synonyms(settings: Settings):
    if not settings.mapping_file:
        return None
    from ram_model.review import load_synonyms

    return load_synonyms(settings.mapping_file)


def create_app(
    settings: Settings | None = None,
    *,
    engine: TaggingEngine | None = None,
    policy: ThresholdPolicy | None = None,
    engine_loader=None,
    grounding: object | None = None,
) -> FastAPI:
    """Build the app; `engine`/`policy` default to what `settings` describe.

    Passing an engine lets a test or a benchmark share one loaded model between apps;
    `grounding` (a backend.serving.grounding.GroundingService) likewise for the detector.
    `engine_loader(config)` loads a project's fine-tuned model (default `TaggingEngine.from_config`;
    Ray Serve passes one that leaves the model on its replicas: backend/serving/ray_serve.py).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        eng = engine or TaggingEngine.from_config(settings.engine_config())
        pol = policy or settings.threshold_policy()
        if getattr(eng, "random_weights", False):
            _log.warning("serving a RANDOM-WEIGHT test checkpoint: its tags mean nothing (%s)", eng.model_version)
        def batcher_for(model: TaggingEngine) -> AsyncBatcher:
            return AsyncBatcher(
                lambda images, with_embedding: model.predict(images, with_embedding=with_embedding),
                max_batch_size=max(model.batch_size, settings.coalesce_max_batch),
                max_wait_ms=settings.max_wait_ms,
                max_queue=settings.max_queue,
                coalesce=settings.coalesce,
            )

        batcher = batcher_for(eng)
        fetcher = MediaFetcher(
            allowed_hosts=settings.allowed_hosts,
            timeout_s=settings.download_timeout_s,
            max_bytes=settings.max_download_bytes,
        )
        store = open_store(settings.store_spec)
        detector = grounding or build_grounding(settings, eng, pol)
        projects = Projects(
            base_engine=eng, base_batcher=batcher, policy=pol, store=store,
            registry_root=settings.registry_root, batcher_factory=batcher_for,
            binding=LabelBinding(
                file_synonyms=_load_synonyms(settings), limits=settings.label_config_limits,
                region_version=region_source_version(detector, settings.evidence_boxes),
                open_set_labels=settings.open_set_labels,
            ),
            label_studio_url=settings.label_studio_url, label_studio_api_key=settings.label_studio_api_key,
            engine_loader=engine_loader or TaggingEngine.from_config,
        )
        app.state.ram = AppState(
            settings=settings,
            engine=eng,
            policy=pol,
            ram_thresholds=pol.resolve(eng.vocab),
            batcher=batcher,
            fetcher=fetcher,
            store=store,
            projects=projects,
            version_sync=VersionSync(settings.sync_label_studio_version),
            training=TrainingManager(settings, store, projects, device=str(eng.device)),
            grounding=detector,
        )
        await batcher.start()
        _log.info(
            "RAM ready: %s on %s, %d tags, model_version %s", eng.variant, eng.device, len(eng.vocab), eng.model_version
        )
        try:
            yield
        finally:
            await app.state.ram.training.aclose()
            await projects.aclose()
            await batcher.stop()
            await fetcher.aclose()
            store.close()

    app = FastAPI(
        title="ram-annotate",
        summary="Recognize Anything (RAM / RAM++) tagging for Label Studio and scripts",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_basic_auth(app, settings.basic_auth)
    install_body_limit(app, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes,
                       max_predict_body_bytes=settings.max_predict_body_bytes)
    app.include_router(ls_router)
    app.include_router(native_router)
    app.include_router(detect_router)
    app.include_router(search_router)
    app.include_router(train_router)
    app.include_router(model_router)
    app.include_router(threshold_router)
    return app
