"""ram_model.weights.registry and `ram-annotate models`: versions, guarded promotion, rollback, registry:// in the engine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_fixtures import model_flags, run_cli
from ram_model import CheckpointNotFoundError, EngineConfig, TaggingEngine
from ram_model.weights.registry import ModelRegistry, RegistryError


@pytest.fixture(scope="module")
def weak_run(tmp_path_factory: pytest.TempPathFactory, shapes_model, shapes_data: Path) -> Path:
    """A run that barely moves from the base (one epoch at a tiny rate): a worse model than `finetune_run`.

    It decodes images in two worker processes (the default), which the other runs skip.
    """
    out = tmp_path_factory.mktemp("weak") / "out"
    code, _ = run_cli(["finetune", "--data", str(shapes_data), "--output", str(out), "--epochs", "1", "--lr", "1e-7",
                       "--val-split", "0.25", "--no-augment", "--no-progress",
                       "--new-classes", "unicorn", *model_flags(shapes_model)])
    assert code == 0
    return out


def test_promote_guard_rollback_and_engine_uris(tmp_path: Path, finetune_run, weak_run: Path) -> None:
    good_dir, _ = finetune_run
    reg = ModelRegistry(tmp_path / "models")
    good = reg.register("shapes", good_dir)
    assert reg.register("shapes", good_dir) == good  # same content, same version
    weak = reg.register("shapes", weak_run)
    assert good.version != weak.version and reg.names() == ["shapes"]
    assert [v.version for v in reg.versions("shapes")] == [good.version, weak.version]
    assert weak.score < good.score

    first = reg.promote("shapes", weak.version)
    assert first.promoted and first.previous is None
    better = reg.promote("shapes", good.version)
    assert better.promoted and better.previous == weak and better.active_score == weak.score
    refused = reg.promote("shapes", weak.version)
    assert not refused.promoted and "does not beat" in refused.reason
    assert reg.active("shapes") == good
    assert reg.promote("shapes", weak.version, force=True).promoted
    assert reg.active("shapes") == weak
    assert reg.rollback("shapes") == good
    assert reg.rollback("shapes") == weak
    with pytest.raises(RegistryError, match="no earlier active version"):
        reg.rollback("shapes")
    assert (tmp_path / "models" / "shapes" / "ACTIVE").read_text().strip() == weak.version

    # The engine loads the active version, or a named one; a new version means a new model_version.
    active = TaggingEngine.from_config(EngineConfig(checkpoint=f"registry://{tmp_path / 'models'}/shapes",
                                                    device="cpu", precision="fp32", decode_workers=0))
    assert active.model_version == weak.card["model_version"]
    pinned = TaggingEngine.from_config(EngineConfig(
        checkpoint=f"registry://{tmp_path / 'models'}/shapes@{good.version}", device="cpu", precision="fp32",
        decode_workers=0))
    assert pinned.model_version == good.card["model_version"] != active.model_version
    assert pinned.vocab.names[-1] == "unicorn"
    with pytest.raises(CheckpointNotFoundError, match="no version"):
        TaggingEngine.from_config(EngineConfig(checkpoint=f"registry://{tmp_path / 'models'}/shapes@0123456789ab"))
    with pytest.raises(CheckpointNotFoundError, match="no active version"):
        reg.register("other", weak_run)
        TaggingEngine.from_config(EngineConfig(checkpoint=f"registry://{tmp_path / 'models'}/other"))


def test_models_cli(tmp_path: Path, finetune_run, weak_run: Path) -> None:
    root = str(tmp_path / "models")
    code, out = run_cli(["models", "register", "--root", root, "shapes", str(finetune_run[0])])
    assert code == 0
    good = json.loads(out)["version"]
    code, out = run_cli(["models", "register", "--root", root, "shapes", str(weak_run)])
    weak = json.loads(out)["version"]
    assert run_cli(["models", "promote", "--root", root, "shapes", good])[0] == 0
    code, out = run_cli(["models", "promote", "--root", root, "shapes", weak])
    assert code == 1 and json.loads(out)["promoted"] is False
    assert run_cli(["models", "promote", "--root", root, "shapes", weak, "--force"])[0] == 0
    code, out = run_cli(["models", "rollback", "--root", root, "shapes"])
    assert code == 0 and json.loads(out)["active"] == good
    code, out = run_cli(["models", "list", "--root", root])
    listed = json.loads(out)["shapes"]
    assert [v["active"] for v in listed] == [True, False]
    code, out = run_cli(["models", "show", "--root", root, "shapes"])
    shown = json.loads(out)
    assert shown["version"] == good and shown["metrics"]["new"]["micro_f1"] > shown["metrics"]["base"]["micro_f1"]
    assert run_cli(["models", "show", "--root", root, "shapes", "ffffffffffff"])[0] == 2
    with pytest.raises(SystemExit):
        run_cli(["models", "register", "--root", root, "shapes"])


def test_register_refuses_an_unfinished_folder(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(RegistryError, match="not a finished fine-tuning run"):
        ModelRegistry(tmp_path / "models").register("x", tmp_path / "run")
    with pytest.raises(RegistryError, match="model name"):
        ModelRegistry(tmp_path / "models").register("../evil", tmp_path / "run")
