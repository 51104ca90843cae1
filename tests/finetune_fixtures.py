"""Session fixtures for the fine-tuning and registry tests: a tiny RAM++ model, a shapes task, one run.

The task is learnable from pixels (each class is a coloured shape, `ram_model.weights.testing`),
so a working trainer must beat the random-weight base clearly on the held-out split.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from ram_model.cli.main import main
from ram_model.weights.testing import TinyModelFiles, make_shapes_dataset, make_tiny_checkpoint

NEW_CLASS = {"unicorn": ((200, 40, 200), "circle")}
# Head mode at its default rate for 10 epochs of 120 training images (bench/sweep_finetune_lr.py).
RUN_ARGS = ["--epochs", "10", "--batch-size", "8", "--val-split", "0.25", "--num-workers", "0",
            "--no-augment", "--new-classes", "unicorn", "--no-progress", "--official-layout"]


def model_flags(files: TinyModelFiles) -> list[str]:
    return ["--checkpoint", str(files.checkpoint), "--swin-config", str(files.swin_config),
            "--head-config", str(files.head_config), "--tag-list", str(files.tag_list),
            "--tag-list-zh", str(files.tag_list_zh), "--thresholds", str(files.thresholds), "--device", "cpu"]


@contextlib.contextmanager
def one_torch_thread():
    """On a shared, overloaded 2-core machine two spinning OpenMP threads run tiny models 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cli(args: list[str]) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), one_torch_thread():
        code = main(args)
    return code, buffer.getvalue()


@pytest.fixture(scope="session")
def shapes_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFiles:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("shapes_model"), variant="ram_plus", seed=0)


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes_data"), 160, seed=1, image_size=64,
                               new_classes=NEW_CLASS)


@pytest.fixture(scope="session")
def finetune_run(tmp_path_factory: pytest.TempPathFactory, shapes_model: TinyModelFiles, shapes_data: Path,
                 ) -> tuple[Path, dict]:
    """One `ram-annotate finetune` run, in process; returns (output folder, the printed summary)."""
    out = tmp_path_factory.mktemp("run") / "out"
    code, stdout = run_cli(["finetune", "--data", str(shapes_data), "--output", str(out), *RUN_ARGS,
                            *model_flags(shapes_model)])
    assert code == 0
    return out, json.loads(stdout)
