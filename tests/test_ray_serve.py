"""`ram-annotate serve --ray`: the app as Ray Serve's ingress, the model in a replica, on the session's
local Ray cluster; a few of the Label Studio protocol tests of tests/test_backend_api.py run against it
over real HTTP (Serve's proxy), unchanged."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from backend_fixtures import FileServer, Route, image_bytes, make_settings

import test_backend_api as api

pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ls_server() -> Iterator[FileServer]:
    """Label Studio's file endpoints, as tests/test_backend_api.py's `ls_files` serves them."""
    with FileServer() as server:
        for i in range(3):
            server.routes[f"/data/upload/1/img{i}.png"] = Route(body=image_bytes(i), require_auth=f"Token {api.TOKEN}")
        server.routes["/data/upload/1/corrupt.png"] = Route(body=b"\x89PNG\r\n\x1a\nnot really", require_auth=None)
        yield server


@pytest.fixture(scope="module")
def serve_url(ray_session, tiny_files, controlled_thresholds: Path, ls_server: FileServer,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    from backend.serving.ray_serve import ServeOptions, deploy

    model = {"checkpoint": str(tiny_files.checkpoint), "swin_config": str(tiny_files.swin_config),
             "head_config": str(tiny_files.head_config), "tag_list": str(tiny_files.tag_list),
             "tag_list_zh": str(tiny_files.tag_list_zh), "thresholds": str(controlled_thresholds),
             "device": "cpu", "precision": "fp32", "batch_size": "4"}  # backend_engine's batch size: same bits
    settings = make_settings(tmp_path_factory.mktemp("serve"), label_studio_url=ls_server.url,
                             label_studio_api_key=api.TOKEN, host="127.0.0.1", port=_free_port(), **model)
    url = deploy(settings, ServeOptions(replicas=1, cpus_per_replica=0.5, max_batch_size=4))
    try:
        yield url
    finally:
        serve.shutdown()


@pytest.fixture
def client(serve_url: str) -> Iterator[httpx.Client]:
    """What the protocol tests call `client`: here real HTTP to Serve's proxy."""
    with httpx.Client(base_url=serve_url, timeout=60) as c:
        yield c


def test_health_and_setup_over_serve(client) -> None:
    checks = api.TestHealthAndSetup()
    checks.test_health_and_root(client)
    checks.test_setup_reports_version_and_unmapped(client)
    checks.test_setup_with_unservable_config_is_422_with_advice(client)


def test_predict_over_serve(client, backend_engine) -> None:
    checks = api.TestPredict()
    checks.test_multiple_choices_get_every_tag_over_threshold(client)
    checks.test_scores_are_the_engines_probabilities(client, backend_engine)
    checks.test_taxonomy_gets_paths(client)
    checks.test_bad_tasks_get_errors_and_the_others_their_predictions(client)


def test_native_api_over_serve_runs_on_the_replica(client, backend_engine) -> None:
    import torch

    checks = api.TestNative()
    checks.test_info(client, backend_engine)
    # Bitwise equal probabilities and embeddings: the local engine at the same batch size (settings above)
    # and at one torch thread, as a Ray worker of under one CPU runs (see tests/test_ray_tag.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        checks.test_tag_bytes_with_all_scores_and_embedding(client, backend_engine)
    finally:
        torch.set_num_threads(threads)
    assert client.get("/v1/info").json()["device"].startswith("ray-serve:")  # the model is in a replica
