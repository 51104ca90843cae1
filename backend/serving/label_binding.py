"""How every project's label config is bound to RAM's classes on this server.

The options (synonyms file, config limits, what fills region controls, open-set labels)
are the server's, the same for all projects; a project only brings its config text and
what serves it (model and thresholds). Binding once more over other class names (the
open-set labels) must use exactly the same options, so both passes go through `bind`.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..labelstudio.config import ConfigLimits
from ..labelstudio.open_set_labels import with_open_set_labels
from ..labelstudio.project import ProjectModel, build_project_model

__all__ = ["LabelBinding"]


@dataclass(frozen=True)
class LabelBinding:
    """The server-wide options of `build_project_model`."""

    file_synonyms: Mapping[str, Sequence[str]] | None = None
    limits: ConfigLimits | None = None
    region_version: str | None = None  # what fills region controls (serving.grounding); None: nothing
    open_set_labels: bool = True  # labels that map onto no RAM tag become open-set classes

    def bind(self, label_config: str | None, engine: Any, ram_thresholds: np.ndarray,
             top_k: int | None) -> ProjectModel:
        """`label_config` bound over `engine`'s vocabulary, with its unmapped labels as open-set classes."""
        rebuild = functools.partial(
            build_project_model, label_config, file_synonyms=self.file_synonyms, top_k=top_k,
            limits=self.limits, detector_version=self.region_version,
        )
        vocab = engine.vocab
        model = rebuild(ram_names=vocab.names, ram_names_zh=vocab.names_zh, ram_thresholds=ram_thresholds,
                        engine_version=engine.model_version)
        if self.open_set_labels:
            model = with_open_set_labels(model, engine, ram_thresholds, rebuild)
        return model
