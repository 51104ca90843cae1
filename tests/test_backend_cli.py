"""`ram-annotate serve`: the flags shared with `tag`, the environment, and a real start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from backend_fixtures import MULTI_CONFIG, free_port

from backend.cli import settings_from_args
from ram_model.cli.main import build_parser
from ram_model.weights.testing import TinyModelFiles

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.


REPO = Path(__file__).resolve().parent.parent


def test_serve_takes_the_tag_model_options():
    serve = build_parser().parse_args(["serve", "--checkpoint", "c.pth", "--swin-config", "s.json",
                                       "--head-config", "h.json", "--tag-list", "t.txt", "--tag-list-zh", "z.txt",
                                       "--thresholds", "th.txt", "--threshold", "0.6", "--device", "cpu",
                                       "--host", "0.0.0.0", "--port", "9191"])
    settings = settings_from_args(serve)
    config = settings.engine_config()
    assert (config.checkpoint, config.swin_config, config.head_config) == ("c.pth", "s.json", "h.json")
    assert (config.tag_list, config.tag_list_zh, config.thresholds, config.device) == ("t.txt", "z.txt", "th.txt", "cpu")
    assert settings.threshold_policy().threshold == 0.6
    assert (settings.host, settings.port) == ("0.0.0.0", 9191)


def test_request_limits_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RAM_ANNOTATE_MAX_PREDICT_TASKS", "77")
    monkeypatch.setenv("RAM_ANNOTATE_MAX_UPLOAD_BYTES", "1000000")
    serve = build_parser().parse_args(["serve", "--max-body-mb", "2", "--max-label-config-kb", "64",
                                       "--label-config-timeout", "2.5", "--max-upload-images", "9"])
    settings = settings_from_args(serve)
    assert (settings.max_body_bytes, settings.max_label_config_bytes) == (2 * 1024 * 1024, 64 * 1024)
    assert (settings.label_config_timeout_s, settings.max_upload_images) == (2.5, 9)
    assert (settings.max_predict_tasks, settings.max_upload_bytes) == (77, 1_000_000)
    assert settings.label_config_limits.max_bytes == 64 * 1024
    flagged = settings_from_args(build_parser().parse_args(["serve", "--max-predict-tasks", "5"]))
    assert flagged.max_predict_tasks == 5  # a flag wins over the environment


def test_environment_fills_what_flags_leave_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:8080/")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "k" * 40)
    monkeypatch.setenv("BASIC_AUTH_USER", "ls")
    monkeypatch.setenv("BASIC_AUTH_PASS", "pw")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("RAM_ANNOTATE_CHECKPOINT", "from-env.pth")
    monkeypatch.setenv("RAM_ANNOTATE_ALLOWED_HOSTS", "images.example.com, cdn.example.com:8443")
    monkeypatch.setenv("MODEL_SCORE_THRESHOLD", "0.3")
    monkeypatch.setenv("RAM_ANNOTATE_TOP_K", "")  # docker-compose lists unset options as empty
    settings = settings_from_args(build_parser().parse_args(["serve", "--port", "9999"]))
    assert settings.label_studio_url == "http://127.0.0.1:8080"
    assert settings.basic_auth == ("ls", "pw") and settings.model_dir == tmp_path
    assert settings.model.checkpoint == "from-env.pth" and settings.port == 9999
    assert settings.allowed_hosts == ["images.example.com", "cdn.example.com:8443"]
    assert settings.model.threshold == 0.3 and settings.model.top_k is None
    flagged = settings_from_args(build_parser().parse_args(["serve", "--checkpoint", "flag.pth"]))
    assert flagged.model.checkpoint == "flag.pth"


def test_bad_label_studio_url_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    from ram_model.cli.main import main

    monkeypatch.setenv("LABEL_STUDIO_URL", "file:///etc")
    assert main(["serve", "--checkpoint", "x.pth"]) == 2
    assert "LABEL_STUDIO_URL must be an http(s) URL" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_starts_loads_once_and_answers(tiny_files: TinyModelFiles, controlled_thresholds: Path, tmp_path: Path):
    port = free_port()
    command = [
        sys.executable, "-m", "ram_model.cli", "serve",
        "--checkpoint", str(tiny_files.checkpoint), "--swin-config", str(tiny_files.swin_config),
        "--head-config", str(tiny_files.head_config), "--tag-list", str(tiny_files.tag_list),
        "--tag-list-zh", str(tiny_files.tag_list_zh), "--thresholds", str(controlled_thresholds),
        "--device", "cpu", "--port", str(port), "--model-dir", str(tmp_path), "--log-level", "warning",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read().decode(errors="replace")
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.3)
        assert health.json()["status"] == "UP"
        setup = httpx.post(f"{url}/setup", json={"project": "1.1", "schema": MULTI_CONFIG}, timeout=10).json()
        assert setup["controls"][0]["unmapped"] == ["Unicorn"]
        assert (tmp_path / "corrections.sqlite3").is_file()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert "RANDOM-WEIGHT" in output  # the random test checkpoint is announced, never disguised
