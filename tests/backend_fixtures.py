"""Fixtures and helpers shared by the backend tests (imported by tests/test_backend_*.py).

Random weights give meaningless tags, so the tests decide which tags fire through the
class-threshold file: `dog` and `cat` get 0.001 (they always fire), every other tag
0.999 (never fires). Nothing asserts a particular random probability.
"""
from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ram_model import TaggingEngine, ThresholdPolicy
from ram_model.weights.testing import TINY_TAGS, TinyModelFiles

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

FIRING = ("dog", "cat")
# Three labels that all map onto RAM tags (dog, cat, car): the training tests' config.
SHAPES_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="tags" toName="image" choice="multiple">
    <Choice value="Dogs"/><Choice value="Cat"/><Choice value="Car"/>
  </Choices>
</View>"""
# The Label Studio label each of those RAM tags is annotated with.
SHAPES_LABEL = {"dog": "Dogs", "cat": "Cat", "car": "Car"}
MULTI_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="tags" toName="image" choice="multiple" showInLine="true">
    <Choice value="Dogs"/>
    <Choice value="Cat"/>
    <Choice value="Car"/>
    <Choice value="Unicorn"/>
  </Choices>
</View>"""
SINGLE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="kind" toName="image" choice="single">
    <Choice value="Car"/>
    <Choice value="Pet" predicted_values="dog,cat"/>
  </Choices>
</View>"""
TAXONOMY_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Taxonomy name="taxonomy" toName="image">
    <Choice value="Animal">
      <Choice value="Dog"/>
      <Choice value="Cat"/>
      <Choice value="Horse"/>
    </Choice>
    <Choice value="Vehicle">
      <Choice value="Car"/>
    </Choice>
  </Taxonomy>
</View>"""


def write_thresholds(path: Path, firing: tuple[str, ...] = FIRING, tags: tuple[str, ...] = TINY_TAGS) -> Path:
    path.write_text("\n".join("0.001" if t in firing else "0.999" for t in tags) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def controlled_thresholds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_thresholds(tmp_path_factory.mktemp("thresholds") / "thresholds.txt")


@pytest.fixture(scope="session")
def backend_engine(tiny_files: TinyModelFiles, controlled_thresholds: Path) -> TaggingEngine:
    return TaggingEngine.from_config(tiny_files.engine_config(thresholds=str(controlled_thresholds)))


def image_bytes(seed: int = 0, size: tuple[int, int] = (72, 56), fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def image_folder(folder: Path, count: int, seed: int = 0) -> Path:
    """`folder` (made) holding `count` images `0.png`, `1.png`, ... of seeds `seed`, `seed + 1`, ...:
    an --allowed-root for the server-side `paths` of /v1/tag."""
    folder.mkdir()
    for i in range(count):
        (folder / f"{i}.png").write_bytes(image_bytes(seed + i))
    return folder


@contextlib.contextmanager
def client_with_image(tmp_path: Path, engine: TaggingEngine, ref: str, seed: int) -> Iterator[TestClient]:
    """A test client of the app whose Label Studio (a local FileServer) serves one image at `ref`;
    server errors come back as responses (a 500 is what the bad-input tests look for)."""
    from fastapi.testclient import TestClient

    with FileServer() as label_studio:
        label_studio.routes[ref] = Route(body=image_bytes(seed))
        app = make_app(tmp_path, engine, label_studio_url=label_studio.url)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    require_auth: str | None = None  # exact Authorization header, else 401
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    drip_s: float = 0.0  # > 0: send the body one byte at a time, this long apart (a slow-drip server)


class FileServer:
    """A real HTTP server on 127.0.0.1 serving fixed routes (images, errors, redirects);
    it records the Authorization header of every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.post_routes: dict[str, Callable[[bytes], tuple[int, bytes]]] = {}
        self.seen: list[tuple[str, str | None]] = []
        routes, post_routes, seen = self.routes, self.post_routes, self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                route = routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if route.require_auth is not None and self.headers.get("Authorization") != route.require_auth:
                    self.send_response(401)
                    self.end_headers()
                    return
                if route.delay_s:
                    time.sleep(route.delay_s)
                self.send_response(route.status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                if route.send_length and "Content-Length" not in route.headers:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                try:
                    if route.drip_s:
                        for i in range(len(route.body)):
                            self.wfile.write(route.body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(route.drip_s)
                    else:
                        self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                handler = post_routes.get(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = handler(body) if handler else (404, b"")
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


@contextlib.contextmanager
def running_server(app, *, port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread; yield its URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during start-up")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start within 60 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def make_settings(tmp_path: Path, **overrides):
    from backend.settings import Settings

    overrides.setdefault("model_dir", tmp_path / "model_dir")
    return Settings(**overrides)


def make_app(tmp_path: Path, engine: TaggingEngine, *, policy: ThresholdPolicy | None = None, **settings):
    from backend.app import create_app

    return create_app(make_settings(tmp_path, **settings), engine=engine, policy=policy or ThresholdPolicy())
