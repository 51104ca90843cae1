"""`/v1/search` over the embeddings `/v1/tag index=...` stored, against a real server under uvicorn
(tiny RAM++ and the `random:tiny` text encoder, fp32): the order must be the plain cosine order."""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from backend_fixtures import image_bytes, image_folder, make_app, running_server

from backend.store import StoredEmbedding, open_store
from ram_client import RamClient, RamServerError
from ram_model import TaggingEngine
from ram_model.text import load_text_encoder
from ram_model.text.search import rank_by_text, rank_chunks_by_text, read_embedding_index

QUERIES = ("a dog on a beach", "scratch on the bumper", "cat")


@pytest.fixture(scope="module")
def text_engine(tiny_files, controlled_thresholds: Path) -> TaggingEngine:
    return TaggingEngine.from_config(tiny_files.engine_config(thresholds=str(controlled_thresholds),
                                                              text_encoder="random:tiny", precision="fp32"))


@pytest.fixture(scope="module")
def server(text_engine: TaggingEngine, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("search")
    root = image_folder(tmp / "images", 3, seed=30)
    app = make_app(tmp, text_engine, allowed_roots=[str(root)])
    with running_server(app) as url:
        yield url, root


@pytest.fixture(scope="module")
def tagged(server):
    """Five images (two uploads, three server paths) tagged into index `shots`; their embeddings by source."""
    url, root = server
    with RamClient(url, chunk_size=2) as client:
        uploads = client.tag([image_bytes(40), image_bytes(41)], embedding=True, index="shots")
    with RamClient(url, server_paths=True) as client:
        paths = client.tag([root / f"{i}.png" for i in range(3)], embedding=True, index="shots")
    assert all(p.ok for p in uploads + paths)
    return {p.source: p.embedding for p in uploads + paths}


def _cosine_order(vectors: dict[str, np.ndarray], text: str) -> list[tuple[str, float]]:
    query = load_text_encoder("random:tiny").encode([text])[0].numpy().astype(np.float64)
    scored = [(float(v.astype(np.float64) @ query / np.linalg.norm(v) / np.linalg.norm(query)), s)
              for s, v in vectors.items()]
    return [(s, score) for score, s in sorted(scored, key=lambda e: -e[0])]


def test_search_ranks_stored_images_by_plain_cosine(server, tagged, tmp_path: Path) -> None:
    url, root = server
    # The same embeddings as a `tag --embedding` JSONL, ranked by ram_model.text.search.
    jsonl = tmp_path / "index.jsonl"
    jsonl.write_text("".join(json.dumps({"path": s, "embedding": v.tolist(), "model_version": "m"}) + "\n"
                             for s, v in tagged.items()))
    local = read_embedding_index(jsonl)
    with RamClient(url) as client:
        for text in QUERIES:
            hits = client.search(text, index="shots", top_k=10)
            want = _cosine_order(tagged, text)
            sources = [h.source for h in hits]
            assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
            assert sorted(sources) == sorted(tagged)
            assert sources == [s for s, _ in want]
            np.testing.assert_allclose([h.score for h in hits], [w for _, w in want], atol=1e-5)
            query = load_text_encoder("random:tiny").encode([text])[0].numpy()
            assert sources == [local.paths[row] for row, _ in rank_by_text(local, query, 10)]
            top2 = client.search(text, index="shots", top_k=2)
            assert [h.source for h in top2] == sources[:2]
    with httpx.Client(base_url=url, trust_env=False) as http:
        body = http.post("/v1/search", json={"text": "cat", "index": "shots", "top_k": 3}).json()
    assert body["random_weights"] is True and body["searched"] == 5 and len(body["results"]) == 3
    assert body["model_version"].startswith("random-")
    keys = {h["key"] for h in body["results"]}
    assert all(k.startswith("sha256:") or k.startswith(str(root)) for k in keys)


def test_tagging_again_replaces_rows_and_other_indexes_stay_apart(server, tagged) -> None:
    url, _ = server
    with RamClient(url) as client:
        client.tag([image_bytes(40)], index="shots")  # the same upload: same key, no new row
        client.tag([image_bytes(50)], index="other")
        assert len(client.search("dog", index="shots")) == 5
        assert len(client.search("dog", index="other")) == 1
        with pytest.raises(RamServerError) as err:
            client.search("dog")  # nothing went into `default`
        assert err.value.status_code == 404 and "tag images with /v1/tag index=default" in str(err.value)


def test_bad_requests_are_clear_4xx(server, tagged) -> None:
    url, _ = server
    with httpx.Client(base_url=url, trust_env=False) as http:
        cases = {
            "top_k 0": ({"text": "dog", "index": "shots", "top_k": 0}, 422, "top_k"),
            "top_k huge": ({"text": "dog", "index": "shots", "top_k": 10_001}, 422, "top_k"),
            "empty text": ({"text": "", "index": "shots"}, 422, "text"),
            "blank text": ({"text": "   ", "index": "shots"}, 400, "text is empty"),
            "too many chars": ({"text": "dog " * 400, "index": "shots"}, 422, "text"),
            "too many tokens": ({"text": "zq" * 200, "index": "shots"}, 422, "tokens"),
            "unknown field": ({"text": "dog", "k": 3}, 422, "k"),
            "no index": ({"text": "dog", "index": "nothing-here"}, 404, "nothing-here"),
        }
        for name, (body, status, words) in cases.items():
            answer = http.post("/v1/search", json=body)
            assert answer.status_code == status, (name, answer.text)
            assert words in answer.json()["error"]["message"], (name, answer.text)
        bad_name = http.post("/v1/tag", data={"index": "../x"}, files=[("images", ("a.png", image_bytes(1)))])
        assert bad_name.status_code == 400 and "index '../x'" in bad_name.json()["error"]["message"]


def test_a_server_without_a_text_encoder_says_so(backend_engine: TaggingEngine, tmp_path: Path) -> None:
    """The default CLIP text encoder cannot be downloaded here: a 409 naming the problem, not a 500."""
    with running_server(make_app(tmp_path, backend_engine)) as url, RamClient(url) as client:
        with httpx.Client(base_url=url, trust_env=False) as http:  # store_embeddings: the `default` index
            stored = http.post("/v1/tag", data={"store_embeddings": "true"},
                               files=[("images", ("a.png", image_bytes(3)))])
        assert stored.status_code == 200 and "embedding" not in stored.json()["results"][0]
        with pytest.raises(RamServerError) as err:
            client.search("dog")
    assert err.value.status_code == 409 and "text encoder" in str(err.value)
    with open_store(tmp_path / "model_dir" / "corrections.sqlite3") as store:
        (rows,) = list(store.embedding_chunks("default", backend_engine.model_version))
    assert [r.key for r in rows] == ["sha256:" + hashlib.sha256(image_bytes(3)).hexdigest()]


@pytest.mark.parametrize("kind", ["sqlite", "mongodb"])
def test_store_streams_embeddings_in_chunks(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Both stores page through an index in chunks; the heap over chunks equals one ranking of all rows."""
    spec = (str(tmp_path / "s.sqlite3") if kind == "sqlite"
            else f"{request.getfixturevalue('mongodb_uri')}/ram_test_{uuid.uuid4().hex[:8]}")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((23, 8)).astype(np.float32)
    with open_store(spec) as store:
        store.record_embeddings([StoredEmbedding("i", f"k{n}", "v1", f"s{n}", v.tobytes()) for n, v in
                                 enumerate(vectors)])
        store.record_embeddings([StoredEmbedding("i", "k0", "v2", "other version", vectors[0].tobytes())])
        chunks = list(store.embedding_chunks("i", "v1", chunk_size=5))
        assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
        assert [r.key for c in chunks for r in c] == [f"k{n}" for n in range(23)]
        query = rng.standard_normal(8).astype(np.float32)
        streamed = rank_chunks_by_text(
            (([r.key for r in c], np.stack([np.frombuffer(r.vector, dtype=np.float32) for r in c])) for c in chunks),
            query, 7)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        direct = np.argsort(-(unit @ (query / np.linalg.norm(query))), kind="stable")[:7]
        assert [k for k, _ in streamed] == [f"k{n}" for n in direct]
        assert list(store.embedding_chunks("i", "v3")) == []


def test_a_store_file_from_before_search_gains_the_table(tmp_path: Path) -> None:
    """A SQLite file written before embeddings existed opens, keeps its rows and stores embeddings."""
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE project_settings (project TEXT PRIMARY KEY, body TEXT NOT NULL)")
        db.execute("INSERT INTO project_settings VALUES ('7', '{\"threshold\": 0.5}')")
    with open_store(path) as store:
        assert store.project_settings("7") == {"threshold": 0.5}
        store.record_embeddings([StoredEmbedding("i", "k", "v", "s", np.ones(4, np.float32).tobytes())])
        (rows,) = list(store.embedding_chunks("i", "v"))
    assert np.frombuffer(rows[0].vector, dtype=np.float32).tolist() == [1.0] * 4
