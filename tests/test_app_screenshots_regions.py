"""docs/app_screenshots_regions.py against the real App in headless Chromium (where Chromium is installed).

The script runs Tag with RAM (evidence maps) and Detect RAM's tags (random detector and SAM) and
fails unless boxes were written and each sample page names the field its screenshot shows.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from test_app_screenshots import pytestmark  # noqa: F401  (fiftyone, slow, skipped without Chromium)

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_screenshots_show_detections_and_a_heatmap(tmp_path: Path) -> None:
    pytest.importorskip("transformers")  # the random detector and segmenter
    assert importlib.util.find_spec("selenium"), "Chromium is installed but selenium is not: pip install selenium"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    script = REPO_ROOT / "docs" / "app_screenshots_regions.py"
    proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=400, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("app-detections.png", "app-heatmap.png"):
        with Image.open(tmp_path / name) as image:
            assert image.width == 1100 and image.height > 500
