"""`ram-annotate search`: free text ranked against the image embeddings of a `tag --embedding` output."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ram_model.cli.main import main
from ram_model.text import load_text_encoder

from conftest import make_image


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("search")
    images = [make_image(d / f"s{k}.png", seed=k + 20) for k in range(4)]
    out = d / "index.jsonl"
    assert main(["tag", *map(str, images), "--checkpoint", "random:tiny", "--embedding", "--precision", "fp32",
                 "--no-progress", "-o", str(out)]) == 0
    return out


def test_search_ranks_every_image_by_cosine_similarity(index, capsys) -> None:
    capsys.readouterr()
    assert main(["search", "a dog on a beach", "scratch on the bumper", "--index", str(index), "--top-k", "3",
                 "--text-encoder", "random:tiny"]) == 0
    captured = capsys.readouterr()
    hits = [json.loads(line) for line in captured.out.splitlines()]
    assert "random weights" in captured.err
    assert [h["rank"] for h in hits] == [1, 2, 3, 1, 2, 3]
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    vectors = {r["path"]: np.asarray(r["embedding"], dtype=np.float32) for r in rows}
    query = load_text_encoder("random:tiny").encode(["a dog on a beach"])[0].numpy()
    expected = sorted(((float(v @ query / np.linalg.norm(v)), p) for p, v in vectors.items()), reverse=True)[:3]
    first = [h for h in hits if h["query"] == "a dog on a beach"]
    assert [h["path"] for h in first] == [p for _, p in expected]
    assert np.allclose([h["score"] for h in first], [s for s, _ in expected], atol=1e-5)


def test_an_index_without_embeddings_is_a_clear_error(tmp_path, capsys) -> None:
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"path": "a.png", "tags": []}) + "\n")
    assert main(["search", "dog", "--index", str(bare), "--text-encoder", "random:tiny"]) == 2
    assert "tag the images with --embedding" in capsys.readouterr().err
    assert main(["search", "dog", "--index", str(tmp_path / "none.jsonl"), "--text-encoder", "random:tiny"]) == 2
    assert "is not a file" in capsys.readouterr().err
