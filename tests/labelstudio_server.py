"""A real Label Studio server for end-to-end tests, started once per test session.

Label Studio conflicts with our own dependencies, so it lives in its own virtualenv:
`$RAM_ANNOTATE_LABEL_STUDIO` (path of its `label-studio` executable), else
`.lsvenv/bin/label-studio` under the repository root, else that virtualenv is created
here (`python3 -m venv .lsvenv && .lsvenv/bin/pip install label-studio`, about a
minute). The server listens on a free 127.0.0.1 port with a temporary data directory
and a preset legacy token, and its whole process group is killed at the end.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LS_USER = "ram-tests@example.com"
LS_PASSWORD = "ram-annotate-tests"
LS_TOKEN = "0123456789abcdef0123456789abcdef01234567"
_START_TIMEOUT_S = 240.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def label_studio_executable() -> Path:
    """Find Label Studio's executable, installing it into `.lsvenv` if it is nowhere."""
    configured = os.environ.get("RAM_ANNOTATE_LABEL_STUDIO")
    if configured:
        path = Path(configured)
        if not path.is_file():
            pytest.fail(f"RAM_ANNOTATE_LABEL_STUDIO={configured} does not exist")
        return path
    venv = REPO_ROOT / ".lsvenv"
    executable = venv / "bin" / "label-studio"
    if not executable.is_file():
        python = shutil.which("python3") or sys.executable
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "label-studio"], check=True)
    return executable


@dataclass
class LabelStudio:
    url: str
    token: str
    data_dir: Path
    local_files_root: Path
    process: subprocess.Popen
    log_path: Path
    _personal_access_token: str | None = None

    def client(self, *, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Token {self.token}"}, timeout=timeout, trust_env=False
        )

    def personal_access_token(self) -> str:
        """The user's personal access token (a JWT refresh token). Label Studio gives a user one at a
        time (`POST /api/token/` answers 400 while it exists), so it is made once and shared."""
        if self._personal_access_token is None:
            with self.client() as ls:
                created = ls.post("/api/token/")
            if created.status_code != 201:
                raise RuntimeError(f"Label Studio did not make a personal access token ({created.status_code}): "
                                   f"{created.text[:300]} (did a test POST /api/token/ itself?)")
            self._personal_access_token = created.json()["token"]
        return self._personal_access_token

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def start_label_studio(base_dir: Path) -> LabelStudio:
    executable = label_studio_executable()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = base_dir / "ls-data"
    files_root = base_dir / "ls-files"
    data_dir.mkdir(parents=True, exist_ok=True)
    files_root.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{executable.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(base_dir),
        "LANG": "C.UTF-8",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": LS_USER,
        "LABEL_STUDIO_PASSWORD": LS_PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": LS_TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files_root),
        # Our backend and webhook receiver listen on loopback; Label Studio refuses
        # loopback ML backends unless both of these are off.
        "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false",
        "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_HOST": url,
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    }
    log_path = base_dir / "label-studio.log"
    log = open(log_path, "wb")  # noqa: SIM115 (handed to the child, closed right after)
    process = subprocess.Popen(
        [str(executable), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=str(base_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so teardown reaches every child
    )
    log.close()
    server = LabelStudio(url, LS_TOKEN, data_dir, files_root, process, log_path)
    deadline = time.monotonic() + _START_TIMEOUT_S
    with httpx.Client(timeout=5.0, trust_env=False) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {process.returncode}:\n{server.log_tail()}")
            try:
                if probe.get(f"{url}/api/projects", headers={"Authorization": f"Token {LS_TOKEN}"}).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
    _stop(process)
    raise RuntimeError(f"Label Studio did not become ready in {_START_TIMEOUT_S:.0f}s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    server = start_label_studio(tmp_path_factory.mktemp("label-studio"))
    try:
        yield server
    finally:
        _stop(server.process)
