"""`ram-annotate tag --ray` on a real local Ray cluster: the same lines as the in-process run, and faults.

One cluster for the session (tests/ray_cluster.py, 2 CPUs); few, tiny runs (random:tiny-sized model).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ram_model.cli.main import main

from conftest import make_image

pytestmark = pytest.mark.ray


def _model_args(files) -> list[str]:
    return ["--checkpoint", str(files.checkpoint), "--swin-config", str(files.swin_config),
            "--head-config", str(files.head_config), "--tag-list", str(files.tag_list),
            "--tag-list-zh", str(files.tag_list_zh), "--thresholds", str(files.thresholds),
            "--device", "cpu", "--precision", "fp32"]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def ray_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve small images of mixed sizes, one corrupt file and one truncated JPEG."""
    d = tmp_path_factory.mktemp("ray_images")
    for i in range(12):
        make_image(d / f"im{i:02d}.{'jpg' if i % 2 else 'png'}", seed=i, size=(40 + 7 * i, 30 + 5 * i))
    (d / "corrupt.png").write_bytes(b"not an image at all")
    good = (d / "im01.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    return d


@pytest.fixture(scope="module")
def in_process(tiny_files, ray_images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The in-process run at one torch thread: what a 1-CPU actor uses (Ray sets OMP_NUM_THREADS to
    an actor's CPUs). fp32 reductions split across threads can differ in the last bit."""
    import torch

    out = tmp_path_factory.mktemp("inproc") / "tags.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["tag", str(ray_images), *_model_args(tiny_files), "--all-scores", "--embedding",
                     "-o", str(out), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_ray_output_is_the_in_process_output_bitwise_and_resumes(ray_session, tiny_files, ray_images: Path,
                                                                in_process: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray.jsonl"
    args = ["tag", str(ray_images), *_model_args(tiny_files), "--all-scores", "--embedding", "-o", str(out),
            "--no-progress", "--ray", "auto", "--ray-batch-size", "4"]
    assert main(args) == 0
    expected = _lines(in_process)
    assert _lines(out) == expected  # same lines, same order, every float the same
    errors = {json.loads(line)["path"]: json.loads(line)["error"] for line in expected}
    assert "not a recognised image format" in errors[str(ray_images / "corrupt.png")]
    assert errors[str(ray_images / "truncated.jpg")]
    # Resume: a crash left 5 whole lines and a torn sixth; the rerun adds exactly the rest.
    out.write_text("\n".join(expected[:5]) + "\n" + expected[5][:40], encoding="utf-8")
    assert main(args) == 0
    assert sorted(_lines(out)) == sorted(expected)
    assert main(args) == 0 and len(_lines(out)) == len(expected)  # nothing left to do


def test_a_killed_actor_is_restarted_and_its_batch_retried(ray_session, tiny_files, ray_images: Path,
                                                           in_process: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "actor-exited"
    monkeypatch.setenv("RAM_ANNOTATE_TEST_RAY_EXIT_AFTER", "2")  # the actor's process exits after its 2nd batch
    monkeypatch.setenv("RAM_ANNOTATE_TEST_RAY_EXIT_MARKER", str(marker))
    out = tmp_path / "ray.jsonl"
    assert main(["tag", str(ray_images), *_model_args(tiny_files), "--all-scores", "--embedding", "-o", str(out),
                 "--no-progress", "--ray", "auto", "--ray-batch-size", "2"]) == 0
    assert marker.exists()  # it really died mid-run (7 batches)
    dead_pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(dead_pid, 0)
    assert _lines(out) == _lines(in_process)  # every image exactly once, the batch in flight redone


def test_a_killed_driver_rerun_resumes_with_every_image_once(ray_session, tiny_files, ray_images: Path,
                                                             in_process: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray.jsonl"
    address = ray_session.get_runtime_context().gcs_address
    argv = ["tag", str(ray_images), *_model_args(tiny_files), "--all-scores", "--embedding", "-o", str(out),
            "--no-progress", "--ray-batch-size", "2"]
    env = {**os.environ, "RAM_ANNOTATE_TEST_RAY_SLEEP_S": "1.0"}  # a slow model: the kill lands mid-run
    driver = subprocess.Popen([sys.executable, "-m", "ram_model.cli.main", *argv, "--ray", address], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and len(_lines(out)) >= 2):
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the driver wrote nothing in 120 s"
            time.sleep(0.2)
    finally:
        driver.kill()
        driver.wait()
    written = len(_lines(out))
    assert 2 <= written < len(_lines(in_process))  # killed part-way
    assert main([*argv, "--ray", "auto"]) == 0
    assert sorted(_lines(out)) == sorted(_lines(in_process))


@pytest.mark.slow
def test_a_lost_worker_node_loses_and_duplicates_nothing(tiny_files, ray_images: Path, in_process: Path,
                                                         tmp_path: Path) -> None:
    """Its own three-node cluster in a child process (a process joins one cluster only)."""
    out = tmp_path / "ray.jsonl"
    argv = ["tag", str(ray_images), *_model_args(tiny_files), "--all-scores", "--embedding", "--no-progress",
            "--ray-batch-size", "2"]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "RAM_ANNOTATE_TEST_RAY_SLEEP_S": "1.0",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    script = Path(__file__).with_name("ray_node_loss.py")
    done = subprocess.run([sys.executable, str(script), str(out), "--", *argv], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    written = int(done.stdout.split("removed node ")[1].split(" after ")[1].split()[0])
    assert written < len(_lines(in_process))  # the node went mid-run
    assert _lines(out) == _lines(in_process)  # every image exactly once, in order, the same bits
