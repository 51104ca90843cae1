"""FiftyOne run records of our jobs: what produced a field, so reruns resume and never mix.

Small, comparable settings (model version, thresholds digest, label mapping digest) go in
the run config, which the App lists; bulky arrays (the 4,585 tag names and thresholds)
go in the run results, which are loaded only when a later job needs them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fiftyone.core.dataset as fod
import numpy as np

from plugin.errors import PluginInputError

from ram_model.inference.thresholds import thresholds_digest  # the one digest, re-exported for the jobs
from ram_model.model.vocab import TagVocabulary

__all__ = [
    "differences",
    "read_run_results",
    "read_run_settings",
    "read_tag_run",
    "TagRun",
    "tag_vocabulary",
    "record_run",
    "thresholds_digest",
]


def read_run_settings(dataset: fod.Dataset, run_key: str) -> dict[str, Any] | None:
    """The settings a run was recorded with, or None if there is no such run."""
    if not dataset.has_run(run_key):
        return None
    config = dataset.get_run_info(run_key).config.serialize()
    return {k: v for k, v in config.items() if k not in ("cls", "type", "method")}


def read_run_results(dataset: fod.Dataset, run_key: str) -> dict[str, Any]:
    """The bulky arrays stored with a run ({} if none were stored)."""
    if not dataset.has_run(run_key):
        return {}
    results = dataset.load_run_results(run_key, cache=False)
    if results is None:
        return {}
    return {k: v for k, v in vars(results).items() if not k.startswith("_")}


def tag_vocabulary(stored: Mapping[str, Any], run_key: str) -> TagVocabulary | None:
    """The vocabulary in a Tag with RAM run's results (`TagVocabulary.to_dict`'s shape), or None
    without one. Runs recorded before that shape stored the same lists under their own keys."""
    vocabulary = stored.get("vocabulary")
    if vocabulary is None and stored.get("vocab_names"):
        vocabulary = {"names": stored["vocab_names"], "names_zh": stored.get("vocab_names_zh"),
                      "thresholds": stored.get("class_thresholds")}
    return TagVocabulary.from_dict(vocabulary, source=f"run {run_key}") if vocabulary else None


@dataclass(frozen=True)
class TagRun:
    """What Tag with RAM recorded for a field: its settings, RAM's vocabulary and the thresholds it applied."""

    settings: dict[str, Any]
    vocabulary: TagVocabulary
    thresholds: np.ndarray  # (K,) the policy's thresholds, as the run fired tags with them


def read_tag_run(dataset: fod.Dataset, ram_field: str) -> TagRun:
    """The record later jobs (disagreements, review batches) score from; one clear error without it."""
    from plugin.params import TagParams

    run_key = TagParams(field=ram_field).run_key
    settings = read_run_settings(dataset, run_key)
    if settings is None:
        raise PluginInputError(
            f"Field {ram_field!r} was not written by Tag with RAM (no run {run_key!r}); run Tag with RAM first")
    stored = read_run_results(dataset, run_key)
    vocabulary = tag_vocabulary(stored, run_key)
    if vocabulary is None or "thresholds" not in stored:
        raise PluginInputError(f"The run record of {ram_field!r} lacks its vocabulary; tag it again")
    return TagRun(settings, vocabulary, np.asarray(stored["thresholds"], dtype=np.float32))


def record_run(
    dataset: fod.Dataset,
    run_key: str,
    settings: Mapping[str, Any],
    *,
    results: Mapping[str, Any] | None = None,
) -> None:
    """Create or replace the run record (settings first: they are what later jobs check)."""
    config = dataset.init_run(**settings)
    if dataset.has_run(run_key):
        dataset.update_run_config(run_key, config)
    else:
        dataset.register_run(run_key, config)
    if results is not None:
        dataset.save_run_results(run_key, dataset.init_run_results(run_key, **results), overwrite=True)


def differences(old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """Human-readable list of the settings that changed, for conflict messages."""
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys if old.get(key) != new.get(key)]
