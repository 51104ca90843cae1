"""`ram-annotate tag|info|convert` end to end, including resume after an interrupted run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ram_model.cli.main import main


def _model_args(files) -> list[str]:
    return ["--checkpoint", str(files.checkpoint), "--swin-config", str(files.swin_config),
            "--head-config", str(files.head_config), "--tag-list", str(files.tag_list),
            "--tag-list-zh", str(files.tag_list_zh), "--thresholds", str(files.thresholds),
            "--device", "cpu", "--precision", "fp32", "--batch-size", "3"]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_tag_writes_one_line_per_image_with_the_api_probabilities(tiny_files, tiny_engine, image_dir: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    code = main(["tag", str(image_dir), str(bad), *_model_args(tiny_files), "--all-scores", "--embedding",
                 "--threshold", "0.2", "--tag-threshold", "dog=0.0", "-o", str(out), "--no-progress"])
    assert code == 0
    rows = _rows(out)
    assert len(rows) == 7
    by_path = {r["path"]: r for r in rows}
    assert "not a recognised image format" in by_path[str(bad)]["error"]
    good = [r for r in rows if not r["error"]]
    probs = tiny_engine.predict_proba([r["path"] for r in good])
    for row, p in zip(good, probs):
        assert row["random_weights"] is True and row["model_version"] == tiny_engine.model_version
        scores = np.array([row["scores"][n] for n in tiny_engine.vocab.names])
        np.testing.assert_allclose(scores, p, atol=2e-6)
        names = [t["name"] for t in row["tags"]]
        assert "dog" in names  # its threshold is 0: it always fires
        assert all(t["score"] > 0.2 or t["name"] == "dog" for t in row["tags"])
        assert [t["score"] for t in row["tags"]] == sorted((t["score"] for t in row["tags"]), reverse=True)
        assert {t["name_zh"] for t in row["tags"] if t["name"] == "dog"} == {"狗"}
        assert len(row["embedding"]) == 512


def test_resume_skips_done_images_and_repairs_a_torn_last_line(tiny_files, image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    args = ["tag", str(image_dir), *_model_args(tiny_files), "-o", str(out), "--no-progress"]
    assert main(args) == 0
    full = _rows(out)
    # Simulate a crash: keep two complete lines and half of the third.
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text(lines[0] + lines[1] + lines[2][: len(lines[2]) // 2], encoding="utf-8")
    assert main(args) == 0
    resumed = _rows(out)
    assert sorted(r["path"] for r in resumed) == sorted(r["path"] for r in full)
    assert len(resumed) == len(full)  # nothing duplicated, nothing lost
    for a, b in zip(sorted(full, key=lambda r: r["path"]), sorted(resumed, key=lambda r: r["path"])):
        assert a["tags"] == b["tags"]
    assert main(args) == 0 and len(_rows(out)) == len(full)  # a third run has nothing to do


def test_resume_refuses_to_mix_thresholds(tiny_files, image_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    base = ["tag", str(image_dir / "img0.png"), *_model_args(tiny_files), "-o", str(out), "--no-progress"]
    assert main(base) == 0
    assert main([*base, "--threshold", "0.1"]) == 2
    assert "other thresholds" in capsys.readouterr().err
    assert main([*base, "--threshold", "0.1", "--overwrite"]) == 0


def test_retry_errors_replaces_failed_lines(tiny_files, image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    late = tmp_path / "late.png"
    args = ["tag", str(late), str(image_dir / "img0.png"), *_model_args(tiny_files), "-o", str(out), "--no-progress"]
    assert main(args) == 0
    assert [r["error"] is not None for r in _rows(out)] == [True, False]
    late.write_bytes((image_dir / "img0.png").read_bytes())  # the missing file appears
    assert main([*args, "--retry-errors"]) == 0
    rows = _rows(out)
    assert len(rows) == 2 and all(r["error"] is None for r in rows)


def test_info_and_convert(tiny_files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tiny_files.checkpoint), *_model_args(tiny_files)[2:], "--keys"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["variant"] == "ram_plus" and info["num_classes"] == 48 and info["random_weights"]
    assert info["keys"]["skipped_buffers"] == len(info["skipped_buffers"]) > 0
    assert info["parameters"]["label_embed"] == 48 * 51 * 512

    out = tmp_path / "tiny.safetensors"
    assert main(["convert", str(tiny_files.checkpoint), str(out), *_model_args(tiny_files)[2:]]) == 0
    assert out.exists() and out.stat().st_size < tiny_files.checkpoint.stat().st_size
    assert main(["info", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["num_classes"] == 48


def test_missing_checkpoint_is_a_clean_error(image_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", str(image_dir), "--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "not a local file" in capsys.readouterr().err


def test_console_script_is_installed(tiny_files, image_dir: Path) -> None:
    exe = Path(sys.executable).with_name("ram-annotate")
    if not exe.exists():
        pytest.skip("package not installed in this environment (pip install -e .)")
    proc = subprocess.run([str(exe), "tag", str(image_dir / "img0.png"), *_model_args(tiny_files), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"].endswith("img0.png")
    assert "random weights" in proc.stderr


def test_tag_with_classes_writes_only_those_tags(tiny_files, tiny_engine, image_dir: Path, tmp_path: Path) -> None:
    """`--classes dog,cat` computes two classes; their scores are the full model's."""
    out = tmp_path / "two.jsonl"
    code = main(["tag", str(image_dir), *_model_args(tiny_files), "--classes", "dog,cat", "--threshold", "0",
                 "--all-scores", "-o", str(out), "--no-progress"])
    assert code == 0
    rows = _rows(out)
    probs = tiny_engine.predict_proba([r["path"] for r in rows])
    dog, cat = tiny_engine.vocab.index_of("dog"), tiny_engine.vocab.index_of("cat")
    for row, p in zip(rows, probs):
        assert {t["name"] for t in row["tags"]} == {"dog", "cat"}  # threshold 0: every computed tag fires
        assert list(row["scores"]) == ["dog", "cat"]
        np.testing.assert_allclose([row["scores"]["dog"], row["scores"]["cat"]], p[[dog, cat]], atol=2e-6)
    listing = tmp_path / "classes.txt"
    listing.write_text("# the project's tags\ncat\n\nbird  \n", encoding="utf-8")
    out2 = tmp_path / "file.jsonl"
    assert main(["tag", str(image_dir), *_model_args(tiny_files), "--classes", str(listing), "--all-scores",
                 "-o", str(out2), "--no-progress"]) == 0
    assert all(list(r["scores"]) == ["cat", "bird"] for r in _rows(out2))


def test_tag_with_an_unknown_class_is_one_clear_error(tiny_files, image_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "none.jsonl"
    code = main(["tag", str(image_dir), *_model_args(tiny_files), "--classes", "dog,dgo", "-o", str(out),
                 "--no-progress"])
    assert code != 0 and not out.exists()
    assert "'dgo' (did you mean 'dog'?)" in capsys.readouterr().err
