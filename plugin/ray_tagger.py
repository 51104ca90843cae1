"""The plugin's `Tagger` on a Ray cluster: the tag job unchanged, the model in a Ray Data actor pool.

`ram-annotate fiftyone tag --ray ...` and the operator's "Run on a Ray cluster" field use it.
The job still lists the samples and writes results back in bulk (`set_values` per chunk) in
this process; only decoding and inference move to the cluster (`ram_model.scale`). Like the
shared server, it computes every class (scores are the same as a restricted run's).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

from plugin.params import ModelParams
from ram_model import ImagePrediction, TagVocabulary
from ram_model.scale.run import RayRun, RaySettings, ray_run

__all__ = ["RayTagger", "ray_tagger"]


class RayTagger:
    """A connected `RayRun` behind the `plugin.models.engine_cache.Tagger` protocol."""

    def __init__(self, run: RayRun) -> None:
        self._run = run

    @property
    def vocab(self) -> TagVocabulary:
        return self._run.facts.vocab

    @property
    def model_version(self) -> str:
        return self._run.facts.model_version

    def describe(self) -> dict[str, Any]:
        config = self._run.config
        return {"where": f"ray:{self._run.settings.target}", "checkpoint": str(config.checkpoint),
                "variant": self._run.facts.variant, "random_weights": self._run.facts.random_weights}

    def predict(self, images: Sequence[Any], *, with_embedding: bool = False, progress=None) -> list[ImagePrediction]:
        out = list(self.predict_iter(images, with_embedding=with_embedding))
        if progress is not None:
            progress(len(out), len(out))
        return out

    def predict_iter(self, images: Iterable[Any], *, with_embedding: bool = False) -> Iterator[ImagePrediction]:
        return self._run.predict_iter([str(p) for p in images], with_embedding=with_embedding)


@contextmanager
def ray_tagger(model: ModelParams, settings: RaySettings) -> Iterator[RayTagger]:
    """Connected for the block (a `local` cluster is started and shut down around it)."""
    if model.server_url:
        raise ValueError("choose either the shared server (server URL) or a Ray cluster, not both")
    with ray_run(model.options.engine_config(), settings) as run:
        yield RayTagger(run)
