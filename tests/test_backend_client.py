"""The Python client the FiftyOne plugin uses, against a real server under uvicorn:
it must hand back what the local engine's `predict` gives."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from backend_fixtures import FIRING, image_bytes, image_folder, make_app, running_server

from ram_client import RamClient, RamServerError
from ram_model import TaggingEngine

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.



@pytest.fixture(scope="module")
def server(backend_engine: TaggingEngine, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("client")
    root = image_folder(tmp / "images", 3, seed=0)
    app = make_app(tmp, backend_engine, allowed_roots=[str(root)], basic_auth_user="u", basic_auth_pass="p")
    with running_server(app) as url:
        yield url, root


def test_info(server, backend_engine: TaggingEngine):
    url, _ = server
    with RamClient(url, auth=("u", "p")) as client:
        info = client.info()
    assert info["vocabulary_size"] == len(backend_engine.vocab) and info["variant"] == backend_engine.variant


def test_tag_matches_the_local_engine(server, backend_engine: TaggingEngine, tmp_path: Path):
    url, root = server
    missing = tmp_path / "missing.png"
    inputs = [image_bytes(0), root / "1.png", str(root / "2.png"), missing, b"not an image"]
    with RamClient(url, auth=("u", "p"), chunk_size=2) as client:
        remote = client.tag(inputs, all_scores=True, embedding=True)
    local = backend_engine.predict([image_bytes(0), root / "1.png", root / "2.png"], with_embedding=True)
    assert [r.ok for r in remote] == [True, True, True, False, False]
    for got, want in zip(remote, local):
        # Batches of another size may differ in the last float bits on CPU; the exact
        # JSON round trip itself is checked in test_backend_api (same batch).
        assert got.probs.dtype == np.float32
        np.testing.assert_allclose(got.probs, want.probs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.embedding, want.embedding, rtol=1e-4, atol=1e-5)
        assert {t.name for t in got.tags} == set(FIRING)
    assert remote[1].source == str(root / "1.png")
    assert "cannot read" in remote[3].error


def test_server_side_paths(server):
    url, root = server
    with RamClient(url, auth=("u", "p"), server_paths=True) as client:
        results = client.tag([root / "0.png", "/etc/hostname", image_bytes(1)])
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].probs is None and results[0].tags  # no all_scores: tags only


def test_errors_raise_with_the_servers_message(server):
    url, _ = server
    with RamClient(url, auth=("u", "wrong")) as client, pytest.raises(RamServerError) as info:
        client.info()
    assert info.value.status_code == 401 and "basic auth" in str(info.value)
