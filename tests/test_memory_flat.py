"""A long `ram-annotate tag` run keeps flat memory: results are written and let go a chunk at a
time, and the decode look-ahead is bounded (issue 13: RSS after 2,000 images within 50 MB of
RSS after 200)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
_IMAGES = 2_200  # a few chunks past the 2,000th, so the process is still alive to be measured
_MB = 1024 * 1024


def _write_images(directory: Path, count: int) -> None:
    """Real, distinct 64x64 JPEG files: a gradient per image plus mild noise."""
    directory.mkdir()
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 64)[None, :, None]
    for i in range(count):
        low, high = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        pixels = low * (1 - ramp) + high * ramp + rng.normal(0, 6, (64, 64, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            directory / f"img_{i:05d}.jpg", quality=90)


def _rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def test_rss_of_a_long_cli_run_stays_flat(tiny_files, tmp_path: Path) -> None:
    images = tmp_path / "images"
    _write_images(images, _IMAGES)
    out = tmp_path / "tags.jsonl"
    args = [sys.executable, "-m", "ram_model.cli", "tag", str(images), "-o", str(out), "--no-progress",
            "--all-scores", "--checkpoint", str(tiny_files.checkpoint),
            "--swin-config", str(tiny_files.swin_config), "--head-config", str(tiny_files.head_config),
            "--tag-list", str(tiny_files.tag_list), "--tag-list-zh", str(tiny_files.tag_list_zh),
            "--thresholds", str(tiny_files.thresholds), "--device", "cpu", "--batch-size", "16"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # kinder to a shared machine
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rss_at: dict[int, int] = {}
    lines, read, deadline = 0, 0, time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline and len(rss_at) < 2:
            if out.exists():
                with out.open("rb") as f:  # only what was appended since the last look
                    f.seek(read)
                    new = f.read()
                read += len(new)
                lines += new.count(b"\n")
            rss = _rss(proc.pid)
            for mark in (200, 2_000):
                if lines >= mark and mark not in rss_at and rss is not None:
                    rss_at[mark] = rss
            time.sleep(0.01)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == _IMAGES and all(r["error"] is None and len(r["scores"]) == 48 for r in rows)
    assert set(rss_at) == {200, 2_000}, f"the run ended before both marks were sampled: {rss_at}"
    growth = rss_at[2_000] - rss_at[200]
    print(f"RSS at 200: {rss_at[200] / _MB:.1f} MB, at 2,000: {rss_at[2_000] / _MB:.1f} MB")
    assert growth < 50 * _MB, f"RSS grew {growth / _MB:.1f} MB from image 200 to 2,000"
