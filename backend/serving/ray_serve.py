"""`ram-annotate serve --ray`: the same FastAPI app, with the model in Ray Serve replicas.

    HTTP (Ray Serve proxy, one URL) -> RamIngress  (@serve.ingress: backend.app.create_app, unchanged
                                                    routes and protocol; Label Studio and the plugin
                                                    see the same server)
                                    -> RamReplica  (N replicas or autoscaled, GPUs per replica; each
                                                    holds the base engine; @serve.batch gathers
                                                    concurrent calls into one forward; fine-tuned
                                                    project models via @serve.multiplexed)

The ingress keeps its own request coalescing (`backend.batcher`), media fetching and
training; only `predict` crosses to the replicas, through `ServeEngine`, which stands in
for a `TaggingEngine` inside the app. Batching together with multiplexing served the wrong
model before Ray PR #59334 (Serve now splits a batch by multiplexed model id;
`check_batching_with_multiplexing` refuses a Ray without it).
"""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from ram_model import EngineConfig, ImagePrediction, TagVocabulary

__all__ = ["ServeOptions", "ServeEngine", "build_serve_app", "check_batching_with_multiplexing"]

BASE_MODEL_ID = "base"


def check_batching_with_multiplexing() -> None:
    """Refuse a Ray whose `@serve.batch` may hand one batch of mixed projects to one model.

    Checked by the feature, not by a version number: Ray PR #59334 (merged 2025-12) made the
    batch queue split batches by multiplexed model id (`_split_batch_by_model_id`).
    """
    import ray
    from ray.serve import batching

    queue = getattr(batching, "_BatchQueue", None)
    if queue is None or not hasattr(queue, "_split_batch_by_model_id"):
        raise RuntimeError(f"ray {ray.__version__}: @serve.batch with @serve.multiplexed can serve the wrong "
                           "model (fixed by Ray PR #59334); upgrade ray")


@dataclass(frozen=True)
class ServeOptions:
    """Replica count, autoscaling and batching (the `serve --ray-*` flags)."""

    replicas: int = 1
    min_replicas: int | None = None  # both set: autoscaling between them instead of a fixed count
    max_replicas: int | None = None
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    max_batch_size: int = 8  # calls gathered by @serve.batch (each call is one coalesced ingress batch)
    batch_wait_timeout_s: float = 0.01
    max_ongoing_requests: int = 32  # Serve's default is 5, which also caps what a batch can gather
    models_per_replica: int = 3  # base model + fine-tuned project models kept loaded per replica

    def deployment_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"max_ongoing_requests": self.max_ongoing_requests,
                                "ray_actor_options": {"num_cpus": self.cpus_per_replica,
                                                      "num_gpus": self.gpus_per_replica}}
        if self.min_replicas is not None and self.max_replicas is not None:
            opts["autoscaling_config"] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                                          "target_ongoing_requests": max(1, self.max_batch_size // 2)}
        else:
            opts["num_replicas"] = self.replicas
        return opts


@dataclass(frozen=True)
class _Call:
    images: list
    with_embedding: bool
    classes: tuple[str, ...] | None


def _replica_class(options: ServeOptions) -> type:
    """The model deployment's class; built per run so the decorators take the flags' values."""
    from ray import serve

    class RamReplica:
        def __init__(self, config: EngineConfig) -> None:
            from ram_model import TaggingEngine

            self.config = config
            self.base = TaggingEngine.from_config(config)

        @serve.multiplexed(max_num_models_per_replica=options.models_per_replica)
        async def get_model(self, model_id: str):
            if model_id == BASE_MODEL_ID:
                return self.base
            from ram_model import TaggingEngine

            config = dataclasses.replace(self.config, checkpoint=model_id, swin_config=None, head_config=None,
                                         tag_list=None, tag_list_zh=None, thresholds=None)
            return await asyncio.to_thread(TaggingEngine.from_config, config)

        async def _engine(self):
            return await self.get_model(serve.get_multiplexed_model_id() or BASE_MODEL_ID)

        async def describe(self) -> dict[str, Any]:
            engine = await self._engine()
            return {"vocab": engine.vocab, "info": engine.info(), "config": engine.config}

        @serve.batch(max_batch_size=options.max_batch_size, batch_wait_timeout_s=options.batch_wait_timeout_s)
        async def tag(self, calls: list[_Call]) -> list[list[ImagePrediction]]:
            engine = await self._engine()  # one model id per batch (Serve splits mixed ones)
            out: list[list[ImagePrediction] | None] = [None] * len(calls)
            groups: dict[tuple, list[int]] = {}
            for i, call in enumerate(calls):
                groups.setdefault((call.with_embedding, call.classes), []).append(i)
            for (with_embedding, classes), members in groups.items():
                view = engine if classes is None else engine.restricted(classes)
                images = [img for i in members for img in calls[i].images]
                preds = await asyncio.to_thread(view.predict, images, with_embedding=with_embedding)
                offset = 0
                for i in members:
                    out[i] = preds[offset:offset + len(calls[i].images)]
                    offset += len(calls[i].images)
            return out  # type: ignore[return-value]

    return RamReplica


class ServeEngine:
    """What the app needs of a `TaggingEngine`, answered by the replicas (predict) and by facts
    read once (vocabulary, version, config). `restricted` views share `model`, as engine views do."""

    def __init__(self, handle: Any, info: dict[str, Any], vocab: TagVocabulary, config: EngineConfig, *,
                 model_id: str = BASE_MODEL_ID, classes: tuple[str, ...] | None = None,
                 model: object | None = None) -> None:
        self._handle, self._info, self._full_vocab, self.config = handle, info, vocab, config
        self.model_id, self._classes = model_id, classes
        self.model = model if model is not None else object()  # identity only (class views, eviction)
        self.vocab = vocab if classes is None else vocab.subset(classes)
        self.batch_size = int(info["batch_size"])

    model_version = property(lambda self: self._info["model_version"])
    variant = property(lambda self: self._info["variant"])
    random_weights = property(lambda self: bool(self._info["random_weights"]))
    image_size = property(lambda self: self._info["image_size"])
    device = property(lambda self: f"ray-serve:{self._info['device']}")
    classes = property(lambda self: self._classes)
    open_set_classes = property(lambda self: tuple(self._info.get("open_set_classes", ())))

    def info(self) -> dict[str, Any]:
        return {**self._info, "device": self.device, "restricted": self._classes is not None,
                "num_classes": len(self.vocab)}

    def restricted(self, classes: Sequence[str] | None) -> "ServeEngine":
        return ServeEngine(self._handle, self._info, self._full_vocab, self.config, model_id=self.model_id,
                           classes=None if classes is None else tuple(classes), model=self.model)

    def predict(self, images: Sequence[Any], *, with_embedding: bool = False, progress=None) -> list[ImagePrediction]:
        """Blocking (the app calls it from its batcher's worker thread)."""
        call = _Call(list(images), with_embedding, self._classes)
        preds = self._handle.options(multiplexed_model_id=self.model_id).tag.remote(call).result()
        if progress is not None:
            progress(len(preds), len(preds))
        return preds

    def predict_iter(self, images, *, with_embedding: bool = False, progress=None):
        yield from self.predict(list(images), with_embedding=with_embedding, progress=progress)

    def tag_embeddings(self):
        raise NotImplementedError("tag embeddings are not served through Ray Serve yet")

    def text_encoder(self):
        """Open-set views of a project's labels are built on the replicas' engines, which this
        proxy cannot do yet: the labels stay unpredicted (`labelstudio.open_set_labels` logs why)."""
        from ram_model import ConfigError

        raise ConfigError("labels outside RAM's tags are not scored through Ray Serve yet (serve without --ray)")

    @classmethod
    def connect(cls, handle: Any, model_id: str = BASE_MODEL_ID) -> "ServeEngine":
        facts = handle.options(multiplexed_model_id=model_id).describe.remote().result()
        return cls(handle, facts["info"], facts["vocab"], facts["config"], model_id=model_id)


def _ingress_class(settings: Any) -> type:
    from ray import serve

    @serve.ingress()
    class RamIngress:
        def __init__(self, model_handle: Any, base_facts: dict[str, Any]) -> None:
            self.handle = model_handle
            self.base = ServeEngine(model_handle, base_facts["info"], base_facts["vocab"], base_facts["config"])

        def __serve_build_asgi_app__(self):
            from backend.app import create_app

            def load(config: EngineConfig) -> ServeEngine:  # a project's fine-tuned model, on the replicas
                return ServeEngine.connect(self.handle, model_id=str(config.checkpoint))

            return create_app(settings, engine=self.base, engine_loader=load)

    return RamIngress


def build_serve_app(settings: Any, options: ServeOptions, base_facts: dict[str, Any]) -> Any:
    """The bound Serve application: ingress in front of the model replicas."""
    from ray import serve

    check_batching_with_multiplexing()
    replica = serve.deployment(_replica_class(options), name="RamReplica", **options.deployment_options())
    ingress = serve.deployment(_ingress_class(settings), name="RamIngress",
                               ray_actor_options={"num_cpus": 0.5})
    return ingress.bind(replica.bind(settings.engine_config()), base_facts)


def describe_base(settings: Any) -> dict[str, Any]:
    """The base model's facts, read by a one-off task where the checkpoint lives (the ingress is
    built before the replicas answer, and it must not block its event loop asking them)."""
    import ray

    @ray.remote(num_cpus=0.5)
    def _describe(config: EngineConfig) -> dict[str, Any]:
        from ram_model import TaggingEngine

        engine = TaggingEngine.from_config(config)
        return {"vocab": engine.vocab, "info": engine.info(), "config": engine.config}

    return ray.get(_describe.remote(settings.engine_config()))


def add_serve_ray_options(parser: Any) -> None:
    """`serve --ray` and its flags (no defaults here: `serve` leaves unset flags None)."""
    from ram_model.scale.options import RAY_TARGET_HELP

    g = parser.add_argument_group("Ray Serve (needs the [ray] extra)")
    g.add_argument("--ray", nargs="?", const="local", metavar="local|auto|ADDRESS",
                   help=f"serve through Ray Serve: {RAY_TARGET_HELP}")
    g.add_argument("--ray-replicas", type=int, metavar="N", help="model replicas (default 1)")
    g.add_argument("--ray-min-replicas", type=int, metavar="N", help="autoscale from N (with --ray-max-replicas)")
    g.add_argument("--ray-max-replicas", type=int, metavar="N", help="autoscale up to N (with --ray-min-replicas)")
    g.add_argument("--ray-gpus-per-replica", type=float, metavar="G", help="GPUs per model replica (default 0)")
    g.add_argument("--ray-cpus-per-replica", type=float, metavar="C", help="CPUs per model replica (default 1)")
    g.add_argument("--ray-max-batch-size", type=int, metavar="N",
                   help="calls @serve.batch gathers into one forward (default 8)")
    g.add_argument("--ray-batch-wait-ms", type=float, metavar="MS", help="how long a batch waits to fill (default 10)")
    g.add_argument("--ray-max-ongoing-requests", type=int, metavar="N",
                   help="requests one replica takes at once (default 32; Serve's own default 5 caps batches)")
    g.add_argument("--ray-models-per-replica", type=int, metavar="N",
                   help="models (base + fine-tuned projects) a replica keeps loaded (default 3)")


def serve_options_from_args(args: Any) -> ServeOptions:
    given = {
        "replicas": args.ray_replicas, "min_replicas": args.ray_min_replicas, "max_replicas": args.ray_max_replicas,
        "gpus_per_replica": args.ray_gpus_per_replica, "cpus_per_replica": args.ray_cpus_per_replica,
        "max_batch_size": args.ray_max_batch_size, "max_ongoing_requests": args.ray_max_ongoing_requests,
        "models_per_replica": args.ray_models_per_replica,
        "batch_wait_timeout_s": None if args.ray_batch_wait_ms is None else args.ray_batch_wait_ms / 1000,
    }
    if (args.ray_min_replicas is None) != (args.ray_max_replicas is None):
        raise ValueError("--ray-min-replicas and --ray-max-replicas go together (autoscaling between them)")
    return ServeOptions(**{k: v for k, v in given.items() if v is not None})


def deploy(settings: Any, options: ServeOptions) -> str:
    """Start Serve's HTTP proxy on the settings' host/port and deploy; returns the URL."""
    from ray import serve

    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_serve_app(settings, options, describe_base(settings)), name="ram-annotate", route_prefix="/",
              blocking=False)
    return f"http://{settings.host}:{settings.port}"


def run_serve(settings: Any, options: ServeOptions, target: str) -> int:
    """`ram-annotate serve --ray`: deploy, then serve until interrupted."""
    import time

    from ram_model.scale.cluster import ray_cluster

    with ray_cluster(target) as ray:
        from ray import serve

        url = deploy(settings, options)
        print(f"ram-annotate on Ray Serve at {url} (ray {ray.__version__}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            serve.shutdown()
    return 0
