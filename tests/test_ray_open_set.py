"""`ram-annotate tag --ray --open-set`: each actor builds the same open-set engine, so the lines are
the in-process run's (open-set classes listed and marked) on a real local Ray cluster."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ram_model.cli.main import main

from conftest import make_image

pytestmark = pytest.mark.ray


def test_ray_open_set_lines_equal_the_in_process_ones(ray_session, tmp_path: Path) -> None:
    import torch

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        make_image(images / f"im{i}.png", seed=i, size=(48 + 8 * i, 40))
    args = ["tag", str(images), "--checkpoint", "random:tiny", "--text-encoder", "random:tiny", "--open-set",
            "--classes", "dog,scratch on the bumper", "--all-scores", "--precision", "fp32", "--device", "cpu",
            "--no-progress"]
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a 1-CPU actor uses: fp32 sums split across threads differ in the last bit
    try:
        assert main([*args, "-o", str(local)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main([*args, "-o", str(remote), "--ray", "auto", "--ray-batch-size", "2"]) == 0
    expected = local.read_text(encoding="utf-8").splitlines()
    assert remote.read_text(encoding="utf-8").splitlines() == expected  # same lines, same order
    rows = [json.loads(line) for line in expected]
    assert len(rows) == 3
    for row in rows:
        assert row["open_set_classes"] == ["scratch on the bumper"] and "-open" in row["model_version"]
        assert set(row["scores"]) == {"dog", "scratch on the bumper"} and row["random_weights"] is True
