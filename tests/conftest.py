"""Shared fixtures: tiny official-layout checkpoints (built once per session) and generated images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ram_model import TaggingEngine
from ram_model.weights.testing import TinyModelFiles, make_tiny_checkpoint

# Fixture modules shared by several test files; registered once here so that session
# fixtures (one Label Studio server per run) are really shared.
pytest_plugins = ["backend_fixtures", "labelstudio_server", "mongod", "finetune_fixtures", "ray_cluster",
                  "plugin_fixtures"]


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFiles:
    """RAM++ tiny checkpoint (48 real tags, random weights)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_ram_plus"), variant="ram_plus", seed=0)


@pytest.fixture(scope="session")
def tiny_files_ram(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFiles:
    """RAM tiny checkpoint, with training-only keys like the official RAM file."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_ram"), variant="ram", seed=1)


@pytest.fixture(scope="session")
def tiny_engine(tiny_files: TinyModelFiles) -> TaggingEngine:
    return TaggingEngine.from_config(tiny_files.engine_config())


def make_image(path: Path, seed: int, size: tuple[int, int] = (96, 72), fmt: str | None = None) -> Path:
    """A reproducible noisy image with some structure (so resizing matters)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * (seed + 3)) % 256, (yy * 7) % 256, ((xx + yy) * 5) % 256], axis=-1)
    noise = rng.integers(0, 60, size=(h, w, 3))
    Image.fromarray(((base + noise) % 256).astype(np.uint8)).save(path, format=fmt)
    return path


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six good images (JPEG and PNG, one in a sub-folder)."""
    d = tmp_path_factory.mktemp("images")
    (d / "sub").mkdir()
    for i in range(5):
        make_image(d / f"img{i}.{'jpg' if i % 2 else 'png'}", seed=i)
    make_image(d / "sub" / "nested.jpg", seed=9, size=(40, 120))
    return d
