"""A fine-tuning run killed with SIGKILL resumes from its last epoch checkpoint and ends where an uninterrupted run ends."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from finetune_fixtures import model_flags
from ram_model.weights.testing import make_shapes_dataset

ROOT = Path(__file__).resolve().parents[1]


def _command(data: Path, out: Path, flags: list[str]) -> list[str]:
    # Augmentation on (the default recipe), so the test also proves it is reproducible across a restart.
    return [sys.executable, "-m", "ram_model.cli", "finetune", "--data", str(data), "--output", str(out),
            "--epochs", "3", "--batch-size", "8", "--val-split", "0.25", "--num-workers", "0", "--no-progress",
            *flags]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _events(out: Path) -> list[dict]:
    log = out / "train_log.jsonl"
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]


def test_kill_9_after_first_epoch_then_resume(tmp_path: Path, shapes_model) -> None:
    data = make_shapes_dataset(tmp_path / "data", 32, seed=5, image_size=64)
    flags = model_flags(shapes_model)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_command(data, out, flags), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(e["event"] == "epoch" for e in _events(out)):
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its first epoch checkpoint: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, "no epoch checkpoint within 120 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stderr.close()
    assert (out / "checkpoints" / "last.pt").is_file()
    assert not (out / "model.safetensors").exists()

    resumed = subprocess.run(_command(data, out, flags), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = _events(out)
    resume_at = next(i for i, e in enumerate(events) if e["event"] == "resume")
    finished_before = [e["epoch"] for e in events[:resume_at] if e["event"] == "epoch"]
    assert events[resume_at]["from_epoch"] == finished_before[-1] + 1
    trained_after = {e["epoch"] for e in events[resume_at:] if e["event"] == "step"}
    assert trained_after == set(range(finished_before[-1] + 1, 4))  # finished epochs are not redone
    assert events[-1]["event"] == "done"

    straight = tmp_path / "straight"
    clean = subprocess.run(_command(data, straight, flags), env=_env(), capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    a, b = load_file(str(out / "model.safetensors")), load_file(str(straight / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(a[k].equal(b[k]) for k in a), "the resumed run ended with other weights than an uninterrupted one"
