"""docs/app_screenshots.py against the real App in headless Chromium (where Chromium is installed).

The script itself checks each page for the texts its screenshot is meant to show (every RAM
operator in the browser, the form's fields, RAM's fields in the sidebar) and fails otherwise.
"""
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

pytestmark = [
    pytest.mark.fiftyone,
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_BROWSER, reason="needs chromium and chromedriver (apt-get install chromium "
                                                "chromium-driver)"),
]


def test_screenshots_show_the_operators_a_form_and_the_grid(tmp_path: Path) -> None:
    assert importlib.util.find_spec("selenium"), "Chromium is installed but selenium is not: pip install selenium"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "docs" / "app_screenshots.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=400, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = ["app-operator-browser.png", "app-tag-form.png", "app-tag-form-model.png", "app-finetune-form.png",
             "app-grid.png"]
    for name in names:
        with Image.open(tmp_path / name) as image:
            assert image.width == 1100 and image.height > 500
