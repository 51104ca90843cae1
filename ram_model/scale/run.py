"""The Ray Data pipeline: paths in (listed on the driver), `ImagePrediction`s out, in input order.

    from_items(paths) -> map_batches(decode_batch)           tasks: read + decode, fractional CPU
                      -> map_batches(TagActor, ActorPoolStrategy(size=N))   one engine per actor
                      -> iter_batches on the driver          streamed; a few blocks in flight

Used by `ram-annotate tag --ray` and the FiftyOne tag job; neither holds the model on the
driver (a one-off task reads the model's facts where the checkpoint lives).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ram_model.model.config import EngineConfig
from ram_model.inference.engine import ImagePrediction
from ..errors import RamModelError
from .actor import FaultHook, ModelFacts, TagActor, decode_batch, describe_model
from .cluster import ray_cluster

__all__ = ["RaySettings", "RayRun", "ray_run"]

_DEFAULT_RAY_BATCH = 16
_DECODE_CPUS = 0.5  # decode tasks share cores with the actors; a whole CPU each would starve a 2-core cluster


@dataclass(frozen=True)
class RaySettings:
    """How the run uses the cluster (the `--ray*` flags)."""

    target: str = "local"
    actors: int | None = None
    gpus_per_actor: float | None = None
    cpus_per_actor: float = 1.0
    batch_size: int | None = None

    @classmethod
    def from_args(cls, args: Any) -> "RaySettings":
        return cls(args.ray, args.ray_actors, args.ray_gpus_per_actor, args.ray_cpus_per_actor, args.ray_batch_size)


def _gpus_per_actor(settings: RaySettings, config: EngineConfig, cluster_gpus: float) -> float:
    if settings.gpus_per_actor is not None:
        return settings.gpus_per_actor
    return 1.0 if cluster_gpus >= 1 and config.device != "cpu" else 0.0


class RayRun:
    """A connected cluster and the model's facts; `predict_iter` streams one pass over paths."""

    def __init__(self, ray: Any, config: EngineConfig, settings: RaySettings, facts: ModelFacts) -> None:
        self.ray, self.config, self.settings, self.facts = ray, config, settings, facts
        gpus = float(ray.cluster_resources().get("GPU", 0))
        self.gpus_per_actor = _gpus_per_actor(settings, config, gpus)
        if self.gpus_per_actor > 0 and gpus < self.gpus_per_actor:
            raise RamModelError(f"--ray-gpus-per-actor {self.gpus_per_actor:g}: the cluster has {gpus:g} GPUs")
        if settings.actors is not None:
            self.actors = settings.actors
        elif self.gpus_per_actor > 0:
            self.actors = max(1, int(gpus // self.gpus_per_actor))
        else:
            self.actors = 1
        engine_batch = config.batch_size or (32 if self.gpus_per_actor > 0 else 1)
        self.batch_size = settings.batch_size or max(_DEFAULT_RAY_BATCH, engine_batch)

    def predict_iter(self, sources: Sequence[str], *, with_embedding: bool = False) -> Iterator[ImagePrediction]:
        """Predictions in the order of `sources`, streamed as Ray hands blocks back."""
        for batch in self.predict_batches(sources, with_embedding=with_embedding):
            yield from batch

    def predict_batches(self, sources: Sequence[str], *,
                        with_embedding: bool = False) -> Iterator[list[ImagePrediction]]:
        """Like `predict_iter`, one list per block as it comes back (write each at once: a driver
        killed mid-run then loses only what was still on the cluster)."""
        if not sources:
            return
        ray = self.ray
        ctx = ray.data.DataContext.get_current()
        saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
        ctx.execution_options.preserve_order = True  # lines in input order, as the in-process run writes them
        ctx.enable_progress_bars = False  # the driver shows its own bar over images
        try:
            # One input block per Ray batch: results stream back (and get written) block by block.
            blocks = max(1, math.ceil(len(sources) / self.batch_size))
            ds = ray.data.from_items([{"path": str(s)} for s in sources], override_num_blocks=blocks)
            ds = ds.map_batches(decode_batch, batch_size=self.batch_size, batch_format="numpy",
                                num_cpus=_DECODE_CPUS,
                                fn_kwargs={"image_size": self.facts.image_size, "config": self.config})
            ds = ds.map_batches(
                TagActor, batch_size=self.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                num_cpus=self.settings.cpus_per_actor, num_gpus=self.gpus_per_actor,
                # An actor that dies (OOM, a lost node, a crash) is restarted and its batch
                # retried: plain Ray actors default to max_restarts=0, but Ray Data's actor pool
                # sets max_restarts=-1 and max_task_retries=-1 unless told otherwise (and passing
                # them here is deprecated since 2.60). tests/test_ray_tag.py kills an actor.
                fn_constructor_args=(self.config, with_embedding, FaultHook.from_env()))
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
                yield list(_predictions(batch, with_embedding))
        finally:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved


def _predictions(batch: dict[str, np.ndarray], with_embedding: bool) -> Iterator[ImagePrediction]:
    for i, path in enumerate(batch["path"]):
        error = str(batch["error"][i]) or None
        if error is not None:
            yield ImagePrediction(str(path), error=error)
            continue
        embedding = np.array(batch["embedding"][i], dtype=np.float32) if with_embedding else None
        yield ImagePrediction(str(path), probs=np.array(batch["probs"][i], dtype=np.float32), embedding=embedding)


@contextmanager
def ray_run(config: EngineConfig, settings: RaySettings) -> Iterator[RayRun]:
    """Connect (or start a local cluster), read the model's facts on the cluster, run, disconnect."""
    with ray_cluster(settings.target) as ray:
        facts = ray.get(ray.remote(num_cpus=_DECODE_CPUS, max_retries=3)(describe_model).remote(config))
        if isinstance(facts, str):
            raise RamModelError(facts)
        yield RayRun(ray, config, settings, facts)
