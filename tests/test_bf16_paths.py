"""Every public path works with bf16 weights, on any CPU (issue 17).

`--precision auto` runs bf16 on CPUs with AMX; these tests force bf16 (slow without AMX, but
the tiny model is cheap) so both branches are exercised on every machine. Numbers are
compared with fp32 at bf16 tolerances and on fired tags, never exactly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ram_model import TaggingEngine, ThresholdPolicy
from ram_model.inference import precision as precision_module
from ram_model.inference.precision import AMX_OVERRIDE_ENV

BF16_ATOL = 5e-2  # probabilities; bf16 keeps 8 mantissa bits


def _paths(image_dir: Path) -> list[str]:
    return sorted(str(p) for p in image_dir.rglob("*.*"))


@pytest.fixture(scope="module", params=["ram_plus", "ram"])
def engines(request: pytest.FixtureRequest) -> tuple[TaggingEngine, TaggingEngine]:
    files = request.getfixturevalue("tiny_files" if request.param == "ram_plus" else "tiny_files_ram")
    return (TaggingEngine.from_config(files.engine_config(precision="bf16")),
            TaggingEngine.from_config(files.engine_config(precision="fp32")))


def _fired(engine: TaggingEngine, probs: np.ndarray) -> set[str]:
    return {t.name for t in ThresholdPolicy(threshold=0.5).select(probs, engine.vocab)}


def test_predict_iter_embeddings_and_tag_embeddings_in_bf16(engines, image_dir: Path) -> None:
    bf16, fp32 = engines
    assert bf16.info()["precision"] == "bfloat16" and bf16.precision == "bfloat16"
    paths = _paths(image_dir)
    low = list(bf16.predict_iter(paths, with_embedding=True))
    ref = fp32.predict(paths, with_embedding=True)
    for a, b in zip(low, ref):
        assert a.ok and a.probs.dtype == np.float32 and a.embedding.dtype == np.float32
        np.testing.assert_allclose(a.probs, b.probs, atol=BF16_ATOL)
        np.testing.assert_allclose(a.embedding, b.embedding, atol=0.1, rtol=0.05)
        # Fired tags move only where a score sits within bf16's error of the threshold.
        near = {bf16.vocab.names[i] for i in np.flatnonzero(np.abs(b.probs - 0.5) < BF16_ATOL)}
        assert _fired(bf16, a.probs) ^ _fired(fp32, b.probs) <= near
    tags = bf16.tag_embeddings()
    assert tags.dtype == np.float32
    np.testing.assert_allclose(tags, fp32.tag_embeddings(), atol=2e-2)


def test_restricted_view_of_a_bf16_engine(engines, image_dir: Path) -> None:
    bf16, _ = engines
    names = [bf16.vocab.names[i] for i in (5, 1, 30)]
    view = bf16.restricted(names)
    paths = _paths(image_dir)
    full = bf16.predict_proba(paths)
    part = view.predict_proba(paths)
    assert part.shape == (len(paths), 3) and view.model_version == bf16.model_version
    rows = [bf16.vocab.index_of(n) for n in names]
    np.testing.assert_allclose(part, full[:, rows], atol=1e-2)
    assert view.tag_embeddings().dtype == np.float32


def test_a_bf16_cast_model_called_directly_matches_the_engine(engines, image_dir: Path) -> None:
    """Code that reaches `engine.model` (outside the engine's autocast) gets the engine's numbers."""
    bf16, fp32 = engines
    x = torch.randn(2, 3, bf16.image_size, bf16.image_size, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        logits, pooled = bf16.model.forward_with_embedding(x)
        ref = fp32.model(x)
    assert logits.dtype == torch.bfloat16 and pooled.shape == (2, 512)
    np.testing.assert_allclose(torch.sigmoid(logits.float()).numpy(), torch.sigmoid(ref).numpy(), atol=BF16_ATOL)
    assert bf16.model.label_embed.dtype == torch.bfloat16


def test_model_version_says_which_precision_ran(engines) -> None:
    bf16, fp32 = engines
    assert bf16.model_version == fp32.model_version + "-bf16"
    assert not fp32.model_version.endswith(("-bf16", "-fp16"))


def test_auto_takes_each_branch_by_the_amx_probe(tiny_files, monkeypatch: pytest.MonkeyPatch) -> None:
    for has_amx, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(precision_module, "cpu_has_amx", lambda has_amx=has_amx: has_amx)
        engine = TaggingEngine.from_config(tiny_files.engine_config(precision="auto"))
        assert engine.precision == expected


def test_the_test_switch_overrides_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AMX_OVERRIDE_ENV, "1")
    assert precision_module.cpu_has_amx()
    monkeypatch.setenv(AMX_OVERRIDE_ENV, "0")
    assert not precision_module.cpu_has_amx()


def test_cli_tag_in_bf16_marks_its_rows_and_never_mixes_them_with_fp32(tiny_files, image_dir: Path,
                                                                        tmp_path: Path) -> None:
    """The same checkpoint tagged on an AMX and a non-AMX machine: versions differ, resume refuses to mix."""
    out = tmp_path / "tags.jsonl"
    common = [sys.executable, "-m", "ram_model.cli", "tag", str(image_dir / "img0.png"),
              "--checkpoint", str(tiny_files.checkpoint), "--swin-config", str(tiny_files.swin_config),
              "--head-config", str(tiny_files.head_config), "--tag-list", str(tiny_files.tag_list),
              "--output", str(out), "--device", "cpu"]
    env = {**os.environ, AMX_OVERRIDE_ENV: "1"}
    done = subprocess.run([*common, "--precision", "auto"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    row = json.loads(out.read_text().splitlines()[0])
    assert row["model_version"].endswith("-bf16") and row["random_weights"] is True
    env[AMX_OVERRIDE_ENV] = "0"
    again = subprocess.run([*common, "--precision", "auto"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "--overwrite" in again.stderr  # other version: not mixed into the file
