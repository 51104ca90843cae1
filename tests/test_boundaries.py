"""ram_model stays importable with torch + numpy + Pillow alone: no integration package is loaded."""
from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("fiftyone", "label_studio_sdk", "fastapi", "starlette", "uvicorn", "torchvision", "timm",
             "backend", "plugin")

CHECK = """
import importlib, pkgutil, sys
import ram_model
for m in pkgutil.walk_packages(ram_model.__path__, "ram_model."):
    importlib.import_module(m.name)
bad = sorted(n for n in sys.modules if n.split(".")[0] in {forbidden!r})
print(",".join(bad))
"""


def test_ram_model_imports_no_integration_package() -> None:
    proc = subprocess.run([sys.executable, "-c", CHECK.format(forbidden=set(FORBIDDEN))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
