"""Where the model runs: with RAM_ANNOTATE_URL set, the operators use a real ram-annotate server.

The server is the backend's own app (`backend.app.create_app`) under uvicorn on loopback,
loading the same tiny checkpoint; the remote run must write what the in-process run writes.
"""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import socket
import threading
import time
from pathlib import Path

import fo_fixtures as fx
import numpy as np
import pytest
import uvicorn

import fiftyone as fo
import fiftyone.operators as foo
from backend.app import create_app
from backend.settings import Settings
from fiftyone.operators.executor import ExecutionRunState

pytestmark = pytest.mark.fiftyone

USER, PASSWORD = "reviewer", "s3cret"


@pytest.fixture(scope="module")
def thresholds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.write_thresholds(tmp_path_factory.mktemp("thr") / "t.txt", {"dog": 0.0, "sky": 0.0, "cat": 0.0})


@pytest.fixture(scope="module")
def model(tiny_files, thresholds) -> dict[str, str]:
    return fx.model_params(tiny_files, thresholds=thresholds)


@pytest.fixture(scope="module")
def server_url(model, tmp_path_factory):
    settings = Settings(**{k: v for k, v in model.items()}, model_dir=tmp_path_factory.mktemp("server"),
                        basic_auth_user=USER, basic_auth_pass=PASSWORD, batch_size=4)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture()
def dataset(request, tmp_path) -> fo.Dataset:
    images = fx.write_images(tmp_path / "imgs", 5, seed=11)
    ds = fx.make_dataset(f"remote-{request.node.name}"[:60], images + [tmp_path / "missing.jpg"])
    yield ds
    ds.delete()


@pytest.fixture()
def remote(monkeypatch, server_url):
    """Configure the server the way a user does: FiftyOne resolves plugin secrets from the environment."""
    monkeypatch.setenv("RAM_ANNOTATE_URL", server_url)
    monkeypatch.setenv("RAM_ANNOTATE_AUTH", f"{USER}:{PASSWORD}")
    return server_url


def _tag(dataset: fo.Dataset, params: dict) -> dict:
    return foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": params}).result


def _tags(dataset: fo.Dataset, field: str) -> list[dict[str, float] | None]:
    return [None if label is None else {c.label: c.confidence for c in label.classifications}
            for label in dataset.values(field)]


def test_remote_and_in_process_runs_write_the_same_tags(dataset, model, monkeypatch, server_url) -> None:
    local = _tag(dataset, {**model, "field": "local"})
    monkeypatch.setenv("RAM_ANNOTATE_URL", server_url)
    monkeypatch.setenv("RAM_ANNOTATE_AUTH", f"{USER}:{PASSWORD}")
    remote = _tag(dataset, {**model, "field": "remote"})
    assert remote["model_version"] == local["model_version"]
    assert (remote["tagged"], remote["failed"]) == (local["tagged"], local["failed"]) == (5, 1)
    assert "missing.jpg" in remote["failures"][0]["filepath"]
    for a, b in zip(_tags(dataset, "local"), _tags(dataset, "remote")):
        assert (a is None) == (b is None)
        if a is not None:
            assert list(a) == list(b) and set(a) == {"dog", "sky", "cat"}
            np.testing.assert_allclose(list(a.values()), list(b.values()), atol=1e-5)  # batch size changes last bits
    assert dataset.get_run_info("ram_tag_remote").config.where == server_url


def test_remote_delegated_run(dataset, model, remote) -> None:
    operation = fx.run_delegated(fx.TAG_URI, dataset, {**model, "field": "ram"})
    assert operation.run_state == ExecutionRunState.COMPLETED, operation.result
    assert operation.result.result["tagged"] == 5
    assert dataset.get_run_info("ram_tag_ram").config.where == remote


def test_wrong_credentials_are_a_clear_error(dataset, model, remote, monkeypatch) -> None:
    monkeypatch.setenv("RAM_ANNOTATE_AUTH", f"{USER}:wrong")
    fx.assert_failed(_tag(dataset, {**model, "field": "ram"}), "401")
    assert not dataset.has_sample_field("ram")


def test_remote_runs_need_no_local_tag_files(dataset, remote) -> None:
    """The vocabulary (48 tiny tags, the server's thresholds) comes from /v1/info: no tag_list given here."""
    result = _tag(dataset, {"field": "ram"})
    assert result["tagged"] == 5
    for tags in _tags(dataset, "ram"):
        assert tags is None or set(tags) == {"dog", "sky", "cat"}
    names = dataset.load_run_results("ram_tag_ram").vocabulary["names"]
    assert len(names) == 48 and names[0] == "dog"


def test_info_sends_the_vocabulary_and_its_digest(server_url, tiny_files, thresholds) -> None:
    from ram_client import RamClient
    from ram_model import TagVocabulary

    with RamClient(server_url, auth=(USER, PASSWORD)) as client:
        info, remote = client.info(), client.vocabulary()
    local = TagVocabulary.from_files(tiny_files.tag_list, tiny_files.tag_list_zh, thresholds)
    assert remote.names == local.names and remote.names_zh == local.names_zh
    np.testing.assert_array_equal(remote.thresholds, local.thresholds)
    assert remote.digest == local.digest and info["model_version"].endswith(f"-{local.digest}")


def test_unreachable_server_is_a_clear_error(dataset, model, monkeypatch) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RAM_ANNOTATE_URL", f"http://127.0.0.1:{port}")
    fx.assert_failed(_tag(dataset, {**model, "field": "ram"}), "Cannot reach the ram-annotate server")
    assert not dataset.has_sample_field("ram")


def test_remote_similarity_indexes_the_servers_embeddings(dataset, remote, model, tiny_files) -> None:
    result = foo.execute_operator(f"{fx.PLUGIN_NAME}/compute_ram_similarity",
                                  {"dataset": dataset.name, "params": {}}).result
    assert (result["embedded"], result["failed"], result["indexed"], result["text_queries"]) == (5, 1, 5, False)
    assert "server" in result["text_query_note"]
    from ram_model import TaggingEngine

    local = TaggingEngine.from_config(tiny_files.engine_config(thresholds=model["thresholds"]))
    expected = [p.embedding for p in local.predict(dataset.values("filepath")[:5], with_embedding=True)]
    np.testing.assert_allclose(np.stack(dataset.values("ram_embedding")[:5]), np.stack(expected), rtol=1e-4,
                               atol=1e-5)
