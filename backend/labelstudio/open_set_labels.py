"""Labels that map onto no RAM tag become open-set classes of their project (issue 20).

A project's labels are often not RAM tags ("scratch on the bumper"). With a text encoder
(`ram_model.text`), such a label is scored like a tag: CLIP embeddings of the prompt
templates for its text go through RAM's tagging head (`TaggingEngine.open_set_view`).
Here the project's mapping is redone over an extended vocabulary, RAM's K tags followed by
the unmapped labels (indices K, K+1, ...), so every downstream step (thresholds, the
prediction) keeps working on index arrays, now of K + E. The open-set
classes' threshold is the official 0.5, overridden like any other by the control's
`model_score_threshold`. Without a loadable text encoder the project is served as before
(those labels are never predicted) and the reason is logged once.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable

import numpy as np

from ram_model.errors import RamModelError
from ram_model.text import OPEN_SET_THRESHOLD

from .project import ProjectModel

__all__ = ["with_open_set_labels"]

_log = logging.getLogger("backend.labelstudio.open_set_labels")
# Text encoders that could not be loaded, and why: tried once per process (a restart after
# installing the weights picks them up), so projects without them cost no probe per config.
_failed: dict[tuple[str | None, str | None], str] = {}


def _encoder_identity(engine) -> str | None:
    """The text encoder's identity, or None (logged once) when it cannot be loaded."""
    key = (engine.config.text_encoder, engine.config.cache_dir)
    if key in _failed:
        return None
    try:
        return engine.text_encoder().identity
    except RamModelError as e:
        _failed[key] = str(e)
        _log.warning("labels that map onto no RAM tag stay unpredicted: %s", e)
        return None


def with_open_set_labels(project: ProjectModel, engine, ram_thresholds: np.ndarray,
                         rebuild: Callable[..., ProjectModel]) -> ProjectModel:
    """`project` with its unmapped labels as open-set classes; `project` itself when none or no encoder.

    `rebuild(ram_names=, ram_names_zh=, ram_thresholds=, engine_version=)` binds the same
    label config again over other names (`build_project_model` with the rest fixed).
    """
    labels = list(dict.fromkeys(label for c in project.controls for label in c.mapping.unmapped))
    if not labels:
        return project
    identity = _encoder_identity(engine)
    if identity is None:
        return project
    vocab = engine.vocab
    size = len(vocab)
    digest = hashlib.sha256("\x00".join([identity, *labels]).encode()).hexdigest()[:8]
    extended = rebuild(
        ram_names=(*vocab.names, *labels),
        ram_names_zh=(*vocab.names_zh, *([""] * len(labels))),
        ram_thresholds=np.concatenate([ram_thresholds, np.full(len(labels), OPEN_SET_THRESHOLD, np.float32)]),
        engine_version=f"{engine.model_version}-open{digest}",
    )
    controls = tuple(
        dataclasses.replace(c, open_set=tuple(dict.fromkeys(
            label for label, idx in zip(c.mapping.labels, c.mapping.ram_indices) if any(i >= size for i in idx))))
        for c in extended.controls
    )
    return dataclasses.replace(extended, controls=controls, open_set_classes=tuple(labels))
