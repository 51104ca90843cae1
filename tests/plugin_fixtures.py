"""Fixtures and helpers of the FiftyOne plugin tests that need no FiftyOne to import.

Registered in conftest's `pytest_plugins`, so test modules name the fixtures without
importing them; `fo_fixtures` (which must be imported before FiftyOne, and starts its
mongod) re-exports the helpers as `fx.write_thresholds` and `fx.model_params`.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ram_model import TaggingEngine

__all__ = ["FIRED", "model_params", "write_thresholds"]

# Under `fired_thresholds` these tags fire on every image (threshold 0.0); every other tag
# has 1.0 and never fires, so what a run writes is known without looking at random outputs.
FIRED = ("dog", "cat")


def write_thresholds(path: Path, values: dict[str, float], *, default: float = 1.0) -> Path:
    """A class-threshold file for the tiny vocabulary: tests decide which tags can fire.

    A threshold of 0.0 fires the tag on every image (probabilities are > 0) and 1.0 never
    fires it, so which tags a run writes is known without looking at random outputs.
    """
    from ram_model.weights.testing import TINY_TAGS

    unknown = set(values) - set(TINY_TAGS)
    assert not unknown, f"not in the tiny vocabulary: {unknown}"
    path.write_text("\n".join(str(values.get(tag, default)) for tag in TINY_TAGS) + "\n", encoding="utf-8")
    return path


def model_params(files, *, thresholds: Path | None = None) -> dict[str, str]:
    """Operator params that make the in-process engine load a tiny checkpoint's files, in fp32
    (as `TinyModelFiles.engine_config()`), so tests can compare its numbers exactly on any CPU."""
    return {
        "checkpoint": str(files.checkpoint),
        "swin_config": str(files.swin_config),
        "head_config": str(files.head_config),
        "tag_list": str(files.tag_list),
        "tag_list_zh": str(files.tag_list_zh),
        "thresholds": str(thresholds or files.thresholds),
        "device": "cpu",
        "precision": "fp32",
    }


@pytest.fixture(scope="module")
def fired_thresholds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_thresholds(tmp_path_factory.mktemp("thr") / "fire_dog_cat.txt", {t: 0.0 for t in FIRED})


@pytest.fixture(scope="module")
def fired_params(tiny_files, fired_thresholds: Path) -> dict[str, str]:
    """The operators' model params of the tiny model under `fired_thresholds`."""
    return model_params(tiny_files, thresholds=fired_thresholds)


@pytest.fixture(scope="module")
def fired_engine(tiny_files, fired_thresholds: Path) -> TaggingEngine:
    """The same model built apart from the plugin, to know what the plugin should have written."""
    return TaggingEngine.from_config(tiny_files.engine_config(thresholds=str(fired_thresholds)))


@pytest.fixture(scope="module")
def forget_zoo_source() -> Iterator[None]:
    """Operators that load RAM as a zoo model install the zoo source into this session's model
    zoo folder; it is removed once the module is done, so later modules start clean."""
    yield
    import fiftyone as fo  # imported by then: the module using this is a FiftyOne test

    shutil.rmtree(Path(fo.config.model_zoo_dir) / "ram-annotate", ignore_errors=True)
