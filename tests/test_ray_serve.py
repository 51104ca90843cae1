"""`ram-annotate serve --ray`: the app as Ray Serve's ingress, the model in a replica, on the session's
local Ray cluster; a few of the Label Studio protocol tests of tests/test_backend_api.py run against it
over real HTTP (Serve's proxy), unchanged."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
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


def test_a_project_model_is_multiplexed_and_batched_apart_from_the_base(serve_url, backend_engine,
                                                                      tmp_path: Path) -> None:
    """A fine-tuned project model reaches the replicas by its model id (`@serve.multiplexed`), and
    concurrent calls for it and for the base, batched by `@serve.batch`, each get their own model."""
    from concurrent.futures import ThreadPoolExecutor

    from ray import serve

    from backend.serving.ray_serve import ServeEngine
    from ram_model import TaggingEngine
    from ram_model.weights.convert import convert_checkpoint
    from ram_model.weights.model_files import load_model
    from ram_model.weights.testing import make_tiny_checkpoint

    other = make_tiny_checkpoint(tmp_path / "other", variant="ram_plus", seed=5)  # other weights
    project_file = convert_checkpoint(load_model(other.engine_config()), tmp_path / "project.safetensors",
                                      dtype="fp32")  # self-contained: configs and vocabulary inside
    handle = serve.get_deployment_handle("RamReplica", app_name="ram-annotate")
    base = ServeEngine.connect(handle)
    project = ServeEngine.connect(handle, model_id=str(project_file))
    local = TaggingEngine.from_config(other.engine_config(checkpoint=str(project_file), swin_config=None,
                                                          head_config=None, tag_list=None, tag_list_zh=None,
                                                          thresholds=None, batch_size=4, precision="fp32"))
    assert project.model_version == local.model_version != base.model_version
    images = [image_bytes(i) for i in range(4)]
    assert not np.allclose(local.predict(images[:1])[0].probs, backend_engine.predict(images[:1])[0].probs,
                           atol=1e-3)  # a call served by the wrong model would show
    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit((project if i % 2 else base).predict, [images[i % 4]]) for i in range(8)]
        results = [j.result()[0] for j in jobs]
    for i, result in enumerate(results):
        expected = (local if i % 2 else backend_engine).predict([images[i % 4]])[0]
        np.testing.assert_allclose(result.probs, expected.probs, atol=1e-6)
