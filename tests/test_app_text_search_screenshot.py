"""docs/app_text_search_screenshot.py against the real App in headless Chromium: a free-text query
sorts the grid (the App's process embeds the text through the index's model). Where Chromium is installed."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
HAVE_BROWSER = bool(shutil.which("chromium") or shutil.which("chromium-browser")) and bool(shutil.which("chromedriver"))

pytestmark = [pytest.mark.fiftyone, pytest.mark.slow,
              pytest.mark.skipif(not HAVE_BROWSER, reason="needs chromium and chromedriver")]


def test_a_free_text_query_sorts_the_grid_in_the_app(tmp_path: Path) -> None:
    assert importlib.util.find_spec("selenium"), "Chromium is installed but selenium is not: pip install selenium"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "docs" / "app_text_search_screenshot.py"),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Image.open(tmp_path / "app-text-search.png") as image:
        assert image.width == 1100 and image.height > 500
