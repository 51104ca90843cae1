"""The CLI's sharp edges (issue 12, items 4, 7 and 8): exact resume, errors that come at
once and in one line, exit codes, convert's output file, the demo without weights."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ram_model.cli.main import main

from conftest import make_image

REPO = Path(__file__).resolve().parents[1]


def _model_args(files) -> list[str]:
    return ["--checkpoint", str(files.checkpoint), "--swin-config", str(files.swin_config),
            "--head-config", str(files.head_config), "--tag-list", str(files.tag_list),
            "--tag-list-zh", str(files.tag_list_zh), "--thresholds", str(files.thresholds), "--device", "cpu"]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING: this checkpoint")]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    env.pop("HF_HUB_OFFLINE", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def garbage_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint that fails to load: an error about anything else proves it was never read."""
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    return path


# -- item 4: exact resume ---------------------------------------------------------------
def test_resume_recognises_an_image_however_its_path_is_spelled(tiny_files, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        make_image(photos / f"p{i} é.png", seed=i)
    (tmp_path / "link").symlink_to(photos, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "tags.jsonl"
    args = [*_model_args(tiny_files), "--output", str(out), "--no-progress"]
    assert main(["tag", "photos/p0 é.png", *args]) == 0
    for spelling in (str(photos / "p0 é.png"), "./photos/p0 é.png", "photos/../photos/p0 é.png",
                     "link/p0 é.png", str(tmp_path / "link")):
        assert main(["tag", spelling, *args]) == 0
    # the folder run added p1 and p2 once; p0 was never tagged again
    assert sorted(Path(r["realpath"]).name for r in _rows(out)) == ["p0 é.png", "p1 é.png", "p2 é.png"]
    assert main(["tag", "photos", "./photos/p1 é.png", "link", *args]) == 0
    assert len(_rows(out)) == 3


def test_one_run_tags_a_file_reached_twice_once(tiny_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "a.png", seed=1)
    monkeypatch.chdir(tmp_path)
    assert main(["tag", "a.png", "./a.png", str(tmp_path / "a.png"), ".", *_model_args(tiny_files),
                 "--no-progress"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_retry_errors_matches_failed_lines_by_identity(tiny_files, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.png").write_bytes(b"broken")
    make_image(tmp_path / "good.png", seed=2)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "tags.jsonl"
    args = [*_model_args(tiny_files), "--output", str(out), "--no-progress"]
    assert main(["tag", "bad.png", "good.png", *args]) == 0
    make_image(tmp_path / "bad.png", seed=3)  # repaired
    assert main(["tag", str(tmp_path / "bad.png"), "./good.png", "--retry-errors", *args]) == 0
    rows = _rows(out)
    assert len(rows) == 2 and all(r["error"] is None for r in rows)


def test_a_file_named_like_a_glob_is_tagged_and_a_symlink_loop_is_not_walked(
        tiny_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "photo[1].png", seed=5)
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    assert main(["tag", "photo[1].png", *_model_args(tiny_files), "--no-progress"]) == 0
    assert [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()] == ["photo[1].png"]
    assert main(["tag", ".", *_model_args(tiny_files), "--no-progress"]) == 0
    assert [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()] == ["photo[1].png"]


def test_folder_walks_skip_hidden_folders_and_macos_resource_forks(tmp_path: Path) -> None:
    from ram_model.inference.inputs import expand_image_paths

    make_image(tmp_path / "a.png", seed=1)
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble metadata, not an image
    (tmp_path / ".ram-export" / "gen-1" / "images").mkdir(parents=True)
    make_image(tmp_path / ".ram-export" / "gen-1" / "images" / "copy.png", seed=1)
    assert expand_image_paths([str(tmp_path)]) == [str(tmp_path / "a.png")]
    assert expand_image_paths([str(tmp_path / "._a.png")]) == [str(tmp_path / "._a.png")]  # named: kept


# -- item 7: errors at once, in one line --------------------------------------------------
def test_offline_environment_fails_at_once_naming_hf_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import huggingface_hub

    def no_download(*_a, **_k):
        raise AssertionError("the downloader (and its retry loop) must not run when HF_HUB_OFFLINE is set")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    make_image(tmp_path / "x.png", seed=0)
    assert main(["tag", str(tmp_path / "x.png"), "--checkpoint", "ram_plus_swin_large_14m"]) == 2
    err = capsys.readouterr().err
    assert len(_error_lines(err)) == 1
    assert "HF_HUB_OFFLINE" in err and "`hf download xinyu1205/recognize-anything-plus-model" in err
    assert "huggingface-cli" not in err


def test_unreachable_hub_fails_without_the_retry_loop(tmp_path: Path) -> None:
    closed = _free_port()  # nothing listens there: every connection is refused
    make_image(tmp_path / "x.png", seed=0)
    proc = subprocess.run(
        [sys.executable, "-m", "ram_model.cli", "tag", str(tmp_path / "x.png"), "--checkpoint",
         "ram_plus_swin_large_14m", "--no-progress"],
        capture_output=True, text=True, timeout=300,
        env=_env(HF_ENDPOINT=f"http://127.0.0.1:{closed}", HF_HUB_CACHE=str(tmp_path / "hub")))
    assert proc.returncode == 2, proc.stderr
    assert "Retrying" not in proc.stderr
    assert len(_error_lines(proc.stderr)) == 1
    assert "cannot be reached" in proc.stderr and "`hf download " in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
@pytest.mark.parametrize("command", ["tag", "serve"])
def test_cuda_without_cuda_is_one_line_before_the_model_loads(command: str, garbage_checkpoint: Path,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "x.png", seed=0)
    args = [str(tmp_path / "x.png")] if command == "tag" else ["--port", str(_free_port())]
    assert main([command, *args, "--checkpoint", str(garbage_checkpoint), "--device", "cuda"]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "CUDA is not available" in err[0], err


def test_serve_with_a_missing_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--checkpoint", str(tmp_path / "none.pth"), "--port", str(_free_port())]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "none.pth" in err[0], err


def test_serve_on_a_busy_port_is_one_line_before_the_model_loads(garbage_checkpoint: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--checkpoint", str(garbage_checkpoint), "--device", "cpu", "--port", str(port),
                     "--host", "127.0.0.1"]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert err == [f"error: port {port} on 127.0.0.1 is already in use (another server?); choose one with --port"]


@pytest.mark.parametrize("pattern", ["nothing-here/*.jpg", "empty-folder", "no-such-file-pattern-*.png"])
def test_a_run_where_no_file_matched_exits_non_zero(pattern: str, garbage_checkpoint: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    monkeypatch.chdir(tmp_path)
    assert main(["tag", pattern, "--checkpoint", str(garbage_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "matched no image file" in err and "no image files found" in err


@pytest.mark.parametrize("output, message", [("missing-folder/tags.jsonl", "does not exist"), (".", "is a folder")])
def test_a_bad_output_path_is_one_line_before_the_model_loads(output: str, message: str, garbage_checkpoint: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "x.png", seed=0)
    monkeypatch.chdir(tmp_path)
    assert main(["tag", "x.png", "--checkpoint", str(garbage_checkpoint), "--output", output]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and message in err[0], err


def test_a_run_where_nothing_could_be_tagged_exits_non_zero(tiny_files, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("text")
    out = tmp_path / "tags.jsonl"
    assert main(["tag", str(tmp_path), *_model_args(tiny_files), "--output", str(out), "--no-progress"]) == 1
    assert "none of the 2 images could be tagged" in capsys.readouterr().err
    assert [r["error"] is not None for r in _rows(out)] == [True, True]  # the errors are still recorded
    make_image(tmp_path / "c.png", seed=4)
    assert main(["tag", str(tmp_path), *_model_args(tiny_files), "--output", str(out), "--no-progress"]) == 0


def test_convert_refuses_a_name_without_safetensors_before_loading(garbage_checkpoint: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(garbage_checkpoint), str(tmp_path / "model.pth")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    assert not (tmp_path / "model.pth").exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_convert_writes_a_file_with_the_umask_permissions(umask: int, mode: int, tiny_files, tmp_path: Path) -> None:
    out = tmp_path / "tiny.safetensors"
    old = os.umask(umask)
    try:
        assert main(["convert", str(tiny_files.checkpoint), str(out), *_model_args(tiny_files)[2:]]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]  # no temporary file left


# -- item 8: trying it without the weights ------------------------------------------------
def test_demo_tags_a_generated_picture_with_random_tags_marked_as_such(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)
    assert row["random_weights"] is True and row["model_version"].startswith("random-")
    assert 1 <= len(row["tags"]) <= 5 and row["error"] is None
    assert "RANDOM weights" in captured.err and "mean nothing" in captured.err and "hf download" in captured.err


def test_random_tiny_checkpoint_fires_tags_and_is_built_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for i in range(4):
        make_image(tmp_path / f"i{i}.png", seed=10 + i, size=(120, 90))
    images = sorted(str(p) for p in tmp_path.glob("i*.png"))
    assert main(["tag", *images, "--checkpoint", "random:tiny", "--no-progress"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["random_weights"] for r in rows)
    assert sum(len(r["tags"]) for r in rows) > 0
    built = list((tmp_path / "cache" / "ram-annotate").iterdir())
    assert [p.suffix for p in built] == [".safetensors"]
    stamp = built[0].stat().st_mtime_ns
    assert main(["info", "random:tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["random_weights"] is True
    assert built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt


def _first_bash_block(markdown: str) -> list[str]:
    block = re.search(r"```bash\n(.*?)```", markdown, re.S)
    assert block, "the README has no bash block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_readme_first_block_runs_as_written_on_a_fresh_clone(tmp_path: Path) -> None:
    """The set-up lines are the install (not repeated here: this venv is that install);
    every other line runs, in a folder holding nothing but the install."""
    if not Path(sys.executable).with_name("ram-annotate").exists():
        pytest.skip("package not installed in this environment (pip install -e .)")
    lines = _first_bash_block((REPO / "README.md").read_text(encoding="utf-8"))
    setup = [line for line in lines if "pip install" in line or ".ci/setup" in line]
    runnable = [line for line in lines if line not in setup]
    assert setup and runnable and any("ram-annotate demo" in line for line in runnable)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    for line in runnable:
        proc = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env=_env(XDG_CACHE_HOME=str(tmp_path / "cache")))
        assert proc.returncode == 0, f"{line!r} failed:\n{proc.stderr}"


def test_plugin_readme_does_not_promise_a_pypi_package() -> None:
    text = (REPO / "plugin" / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"pip install ['\"]?ram-annotate\[", text)
    assert "pip install" in text and ("git clone" in text or ".tar.gz" in text)
