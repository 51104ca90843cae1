"""One local Ray cluster per test session (2 CPUs), shared by every Ray test and shut down at the end."""
from __future__ import annotations

import os
from typing import Any, Iterator

import pytest


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """A real local cluster, `ray.init(num_cpus=2)`; its workers get this checkout on PYTHONPATH."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    pytest.importorskip("ray.data")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    if ray.is_initialized():
        ray.shutdown()
    # address="local": a fresh cluster of the test run's own, even if another runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
