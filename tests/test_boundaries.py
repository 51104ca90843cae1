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


CLIENT_CHECK = """
import sys
import ram_client
bad = sorted(n for n in sys.modules if n.split(".")[0] in {"torch", "ram_model", "backend", "fastapi", "plugin",
                                                        "fiftyone", "PIL"})
print(",".join(bad))
"""


def test_ram_client_needs_only_httpx_and_numpy() -> None:
    """Scripts and the FiftyOne plugin talk to a server without installing it (or torch)."""
    proc = subprocess.run([sys.executable, "-c", CLIENT_CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_the_plugin_does_not_import_the_server() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys, plugin.remote; "
                           "print(','.join(n for n in sys.modules if n.split('.')[0] in ('backend', 'fastapi')))"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
