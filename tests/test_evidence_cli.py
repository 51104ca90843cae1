"""`ram-annotate tag --evidence` end to end on random:tiny: rows, bad input, resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from finetune_fixtures import one_torch_thread
from PIL import Image

from ram_model.cli.main import main


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _random_tiny_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))  # random:tiny is built once, here


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Two spinning OpenMP threads on a shared 2-core machine make tiny models many times slower."""
    with one_torch_thread():
        yield


def _images(folder: Path, count: int) -> list[str]:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(48 + 8 * i, 80, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


BASE = ["--checkpoint", "random:tiny", "--precision", "fp32", "--device", "cpu", "--no-progress"]


def test_every_fired_tag_gets_a_map_and_a_box(tmp_path: Path) -> None:
    images = _images(tmp_path / "img", 4)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out.jsonl"
    assert main(["tag", *images, str(bad), *BASE, "--top-k", "4", "--evidence", "-o", str(out)]) == 0
    rows = {r["path"]: r for r in _rows(out)}
    assert rows[str(bad)]["error"] and rows[str(bad)]["evidence"] == []
    good = [rows[p] for p in images]
    assert any(r["tags"] for r in good)
    for row in good:
        assert [e["name"] for e in row["evidence"]] == [t["name"] for t in row["tags"]]
        for ev in row["evidence"]:
            grid = np.array(ev["map"])
            assert grid.shape == (2, 2)  # random:tiny: 64 px, a 2 x 2 token grid
            assert grid.min() >= 0 and grid.max() == 1.0
            assert all(round(v, 3) == v for v in grid.ravel())
            x0, y0, x1, y1 = ev["box"]
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_no_fired_tag_gives_an_empty_list_and_plain_rows_have_no_evidence(tmp_path: Path) -> None:
    images = _images(tmp_path / "img", 2)
    out, plain = tmp_path / "out.jsonl", tmp_path / "plain.jsonl"
    assert main(["tag", *images, *BASE, "--threshold", "1.0", "--evidence", "-o", str(out)]) == 0
    assert [r["evidence"] for r in _rows(out)] == [[], []]
    assert main(["tag", *images, *BASE, "-o", str(plain)]) == 0
    assert all("evidence" not in r for r in _rows(plain))


def test_resume_never_mixes_rows_with_and_without_evidence(tmp_path: Path, capsys) -> None:
    images = _images(tmp_path / "img", 3)
    out = tmp_path / "out.jsonl"
    assert main(["tag", images[0], *BASE, "-o", str(out)]) == 0
    assert main(["tag", *images, *BASE, "--evidence", "-o", str(out)]) == 2
    assert "without --evidence" in capsys.readouterr().err
    assert main(["tag", *images, *BASE, "--evidence", "-o", str(out), "--overwrite"]) == 0
    assert main(["tag", *images, *BASE, "--evidence", "-o", str(out)]) == 0  # resumes: nothing to do
    rows = _rows(out)
    assert len(rows) == 3 and all("evidence" in r for r in rows)


def test_empty_image_list_is_one_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["tag", str(tmp_path / "empty"), *BASE, "--evidence"]) == 2
    assert "no image files found" in capsys.readouterr().err


def test_evidence_on_a_ray_cluster_is_refused_before_any_cluster_starts(tmp_path: Path, capsys) -> None:
    """The maps need the model's gradients in this process; `--ray` runs it elsewhere."""
    images = _images(tmp_path / "img", 1)
    assert main(["tag", *images, *BASE, "--evidence", "--ray", "local", "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "--evidence runs in this process only" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
