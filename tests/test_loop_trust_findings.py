"""Issue 22's held-out findings 3-7: a damaged registry version, export clobbering,
strict threshold types, one-line CLI errors for bad numbers and hostile files, bounded
pagination. Real app (FastAPI's test client), real store, tiny random-weight models."""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from backend_fixtures import SHAPES_CONFIG as CONFIG
from backend_fixtures import FileServer, Route, make_app
from fastapi.testclient import TestClient

from backend.training.cli import register as register_corrections
from ram_model import TaggingEngine
from ram_model.weights.convert import convert_checkpoint
from ram_model.weights.model_files import load_model
from ram_model.weights.registry import ModelRegistry



# -- finding 3: a damaged active version ------------------------------------------------------

def _version_dir(tmp: Path, tiny_files, seed: float, *, new_f1: float = 0.5, base_f1: float = 0.4,
                 val: int = 30) -> Path:
    """A registrable run folder: the tiny model with one bias moved, so each seed is its own version."""
    loaded = load_model(tiny_files.engine_config(precision="fp32"))
    with torch.no_grad():
        name, param = next((n, p) for n, p in loaded.model.named_parameters() if n.endswith("bias"))
        param.add_(seed)
    run = tmp / f"run{seed}"
    convert_checkpoint(loaded, run / "model.safetensors", dtype="fp32")
    shutil.copy(tiny_files.thresholds, run / "thresholds.txt")
    (run / "metrics.json").write_text(json.dumps({"split": {"train": 3 * val, "val": val},
                                                  "new": {"micro_f1": new_f1, "images": val},
                                                  "base": {"micro_f1": base_f1, "images": val}}))
    (run / "card.json").write_text(json.dumps({"model_version": f"test-{seed}"}))
    return run


def _models(client: TestClient) -> dict:
    response = client.get("/v1/models/5")
    assert response.status_code == 200, response.text
    return response.json()


def _predict_version(client: TestClient, png: bytes, file_server: FileServer) -> str:
    file_server.routes["/data/upload/5/a.png"] = Route(body=png)
    response = client.post("/predict", json={
        "tasks": [{"id": 1, "data": {"image": f"{file_server.url}/data/upload/5/a.png"}}],
        "project": "5.1", "label_config": CONFIG})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    return result["model_version"]


def test_a_damaged_active_version_falls_back_once_with_one_clear_error(
        tmp_path: Path, backend_engine: TaggingEngine, tiny_files, file_server: FileServer,
        caplog: pytest.LogCaptureFixture) -> None:
    from backend_fixtures import image_bytes

    registry = ModelRegistry(tmp_path / "model_dir" / "registry")
    good = registry.register("project-5", _version_dir(tmp_path, tiny_files, 0.25))
    registry.promote("project-5", good.version)
    bad = registry.register("project-5", _version_dir(tmp_path, tiny_files, 0.5))
    registry.promote("project-5", bad.version, force=True)
    weights = bad.checkpoint.read_bytes()
    bad.checkpoint.write_bytes(weights[: len(weights) // 3])  # truncated model.safetensors

    app = make_app(tmp_path, backend_engine, allowed_hosts=["127.0.0.1"])
    png = image_bytes(1)
    with TestClient(app) as client, caplog.at_level(logging.WARNING, logger="backend.serving.model_fallback"):
        first = _models(client)
        assert first["active"] == good.version, "the previous good version serves"
        assert list(first["load_errors"]) == [bad.version]
        assert "safetensors" in first["load_errors"][bad.version] and "\n" not in first["load_errors"][bad.version]
        versions = {_predict_version(client, png, file_server) for _ in range(3)}
        assert len(versions) == 1 and versions.pop().startswith(first["model_version"])
        assert first["model_version"] != backend_engine.model_version
        _models(client)
        warnings = [r for r in caplog.records if bad.version in r.getMessage()]
        assert len(warnings) == 1, "the failed load is remembered: no retry per request"

    # Now the good version's card is garbage too: after a restart the base model serves.
    (good.path / "card.json").write_text("{not json")
    with TestClient(make_app(tmp_path, backend_engine, allowed_hosts=["127.0.0.1"])) as client:
        second = _models(client)
        assert second["active"] is None and second["model_version"] == backend_engine.model_version
        assert set(second["load_errors"]) == {good.version, bad.version}
        assert "card.json" in second["load_errors"][good.version]
        assert _predict_version(client, png, file_server).startswith(backend_engine.model_version)


# -- finding 4 and 6: corrections export ---------------------------------------------------------

def _export(args: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register_corrections(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(args)
    return parsed.func(parsed)


def test_corrections_export_never_clobbers_and_a_missing_folder_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from backend.store import open_store

    model_dir = tmp_path / "md"
    model_dir.mkdir()
    open_store(model_dir / "corrections.sqlite3").close()
    out = tmp_path / "ram.json"
    out.write_text('[{"precious": true}]')
    for fmt in ("ram", "labelstudio", "fiftyone"):
        assert _export(["corrections", "export", "--project", "5", "--format", fmt, "--model-dir", str(model_dir),
                        str(out)]) == 1
        assert out.read_text() == '[{"precious": true}]', f"{fmt}: an empty export left the file alone"
    err = capsys.readouterr().err
    assert "nothing to export" in err and "left as it was" in err

    assert _export(["corrections", "export", "--project", "5", "--model-dir", str(model_dir),
                    str(tmp_path / "missing" / "ram.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err and "Traceback" not in err


# -- finding 5: thresholds ---------------------------------------------------------------------

def test_thresholds_take_numbers_only_and_odd_names_get_a_clean_4xx(tmp_path: Path,
                                                                     backend_engine: TaggingEngine) -> None:
    with TestClient(make_app(tmp_path, backend_engine)) as client:
        for value in (True, False, "0.5", None, [0.5]):
            response = client.put("/v1/projects/5/thresholds", json={"manual": {"dog": value}})
            assert response.status_code == 400, (value, response.text)
            assert "number" in response.json()["error"]["message"]
        assert client.get("/v1/projects/5/thresholds").json()["manual"] == {}
        assert client.put("/v1/projects/5/thresholds", json={"manual": {"dog": 1}}).json()["manual"] == {"dog": 1.0}
        # A lone surrogate (valid JSON, not encodable as UTF-8) in a tag name.
        raw = b'{"manual": {"\\ud800dog": 0.5}}'
        response = client.put("/v1/projects/5/thresholds", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert "\\ud800" in response.json()["error"]["message"]


# -- finding 6: one-line CLI errors --------------------------------------------------------------

def test_bad_numbers_and_hostile_files_are_one_line_cli_errors(tmp_path: Path, tiny_files, image_dir: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    from ram_model.cli.main import main

    model = ["--checkpoint", str(tiny_files.checkpoint), "--swin-config", str(tiny_files.swin_config),
             "--head-config", str(tiny_files.head_config), "--tag-list", str(tiny_files.tag_list), "--device", "cpu"]
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"image_path": "a.png", "caption": ["dog"], "union_label_id": [0],
                                 "parse_label_id": [[0]]}]))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    registry = ModelRegistry(tmp_path / "reg")
    version = registry.register("x", _version_dir(tmp_path, tiny_files, 0.75))
    registry.promote("x", version.version)
    version.checkpoint.write_bytes(version.checkpoint.read_bytes()[:5000])
    image = next(iter(sorted(image_dir.iterdir())))
    cases = {
        "--lr must be <= 1": ["finetune", "--data", str(data), "--output", str(tmp_path / "r1"), "--lr", "inf", *model],
        "lr must be a finite number > 0": ["finetune", "--data", str(data), "--output", str(tmp_path / "r0"),
                                           "--lr", "0", *model],
        "weight_decay must be a finite": ["finetune", "--data", str(data), "--output", str(tmp_path / "r2"),
                                          "--weight-decay", "inf", *model],
        "--weight-decay must be a number, not NaN": ["finetune", "--data", str(data), "--output",
                                                     str(tmp_path / "r3"), "--weight-decay", "nan", *model],
        "nested too deeply": ["finetune", "--data", str(deep), "--output", str(tmp_path / "r4"), *model],
        "not a readable safetensors file": ["tag", "--checkpoint", f"registry://{tmp_path / 'reg'}/x",
                                            "--device", "cpu", str(image)],
    }
    for expected, args in cases.items():
        code = main(args)  # in process: an exception that escaped would fail the test here
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING")]
        assert code != 0 and len(lines) == 1, (args, err[-2000:])
        assert expected.strip() in lines[0] and "Traceback" not in err


# -- finding 7: bounded pagination -------------------------------------------------------------

def _page(ids: range, next_link: str | None, **extra) -> Route:
    return Route(body=json.dumps({"tasks": [{"id": i} for i in ids], "next": next_link, **extra}).encode(),
                 headers={"Content-Type": "application/json"})


def _task_path(page: int) -> str:
    return f"/api/tasks/?fields=all&page={page}&page_size=100&project=1"  # as label-studio-sdk asks for it


def test_the_label_studio_client_stops_paging_a_server_that_always_says_next(
        file_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from ram_client.labelstudio import client as ls_client

    def requests() -> int:
        return sum(path.startswith("/api/tasks") for path, _ in file_server.seen)

    with ls_client.LabelStudioClient(file_server.url, "k" * 40) as client:
        # The same page again and again (a proxy that drops the page parameter).
        for page in range(1, 50):
            file_server.routes[_task_path(page)] = _page(range(100), f"{file_server.url}/next?p={page}")
        with pytest.raises(ls_client.LabelStudioError, match="earlier page"):
            list(client.tasks(1))
        assert requests() == 2

        # Fresh items, but the same next link each time.
        file_server.seen.clear()
        for page in range(1, 50):
            file_server.routes[_task_path(page)] = _page(range(page * 100, page * 100 + 100), "http://x/next")
        with pytest.raises(ls_client.LabelStudioError, match="same next page"):
            list(client.tasks(1))
        assert requests() == 2

        # Fresh items and links with an announced total: stops once it was reached.
        file_server.seen.clear()
        for page in range(1, 50):
            file_server.routes[_task_path(page)] = _page(range(page * 100, page * 100 + 100), f"http://x/{page}",
                                                         total=250)
        assert len(list(client.tasks(1))) == 300 and requests() == 3

        # No total at all: the page cap ends it with an error.
        file_server.seen.clear()
        monkeypatch.setattr(ls_client, "_MAX_PAGES", 6)
        for page in range(1, 50):
            file_server.routes[_task_path(page)] = _page(range(page * 100, page * 100 + 100), f"http://x/{page}")
        with pytest.raises(ls_client.LabelStudioError, match="after 6 pages"):
            list(client.tasks(1))
        assert requests() == 6


# -- promotion on evidence (issue 22, "What to build" 1) ----------------------------------------

def test_promotion_needs_enough_validation_images_and_must_beat_the_base(tmp_path: Path, tiny_files) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    tiny_val = registry.register("p", _version_dir(tmp_path, tiny_files, 1.0, new_f1=1.0, base_f1=0.667, val=1))
    refused = registry.promote("p", tiny_val.version, min_val_images=20)
    assert not refused.promoted and "1 image(s), fewer than the 20" in refused.reason
    assert registry.active("p") is None, "registered, not promoted"

    # The base checkpoint counts as what serves: a first version must beat it on the same images.
    worse = registry.register("p", _version_dir(tmp_path, tiny_files, 2.0, new_f1=0.3, base_f1=0.4, val=25))
    kept = registry.promote("p", worse.version, min_val_images=20)
    assert not kept.promoted and "does not beat the base model's 0.4000" in kept.reason
    better = registry.register("p", _version_dir(tmp_path, tiny_files, 3.0, new_f1=0.6, base_f1=0.4, val=25))
    first = registry.promote("p", better.version, min_val_images=20)
    assert first.promoted and "beats the base model's" in first.reason

    forced = registry.promote("p", tiny_val.version, min_val_images=20, force=True)
    assert forced.promoted and forced.reason.startswith("forced: validated on only 1")


# -- "0 results" says why (issue 22, visible outcomes) ---------------------------------------

def test_tuning_that_tunes_nothing_says_why() -> None:
    import numpy as np

    from ram_model.review import tune_thresholds

    probs = np.random.default_rng(0).random((3, 3)).astype(np.float32)
    prior = np.full(3, 0.5, np.float32)
    few = tune_thresholds(np.array([[1, 0, -1], [0, 0, -1], [1, 0, -1]], np.int8), probs, prior=prior, min_count=5)
    assert "fewer than min_count=5" in few.why_none() and "the most: 2" in few.why_none()
    nothing = tune_thresholds(np.full((3, 3), -1, np.int8), probs, prior=prior, min_count=5)
    assert "nothing was reviewed" in nothing.why_none()
    some = tune_thresholds(np.array([[1, 0, -1], [0, 0, -1], [1, 0, -1]], np.int8), probs, prior=prior,
                           min_count=1, shrink=0)
    assert some.why_none() is None
