"""One declaration of the model options (`ram_model.inference.options`), and one firing rule,
used by the CLI, the server and the FiftyOne form alike."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ram_model.cli.main import build_parser
from ram_model.errors import ConfigError
from ram_model.inference.options import DEFAULT_CHECKPOINT, MODEL_OPTIONS, MODEL_OPTION_NAMES, ModelOptions
from ram_model.inference.thresholds import ThresholdPolicy, fired_indices
from ram_model.model.vocab import TagVocabulary

REPO = Path(__file__).resolve().parents[1]


def _flags(command: list[str]) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {opt for action in sub.choices[command[0]]._actions for opt in action.option_strings}


@pytest.mark.parametrize("command", [["tag"], ["serve"]])
def test_every_option_is_a_flag_of_every_command(command: list[str]) -> None:
    assert {spec.flag for spec in MODEL_OPTIONS} <= _flags(command)


def test_flags_then_environment_then_defaults() -> None:
    args = build_parser().parse_args(["tag", "x.png", "--threshold", "0.4", "--tag-threshold", "dog=0.2"])
    env = {"RAM_ANNOTATE_THRESHOLD": "0.9", "RAM_ANNOTATE_DEVICE": "cpu", "RAM_ANNOTATE_TOP_K": "3"}
    options = ModelOptions.from_values(vars(args), env=env)
    assert (options.threshold, options.device, options.top_k, options.checkpoint) == (0.4, "cpu", 3, DEFAULT_CHECKPOINT)
    assert options.threshold_policy() == ThresholdPolicy(threshold=0.4, per_tag={"dog": 0.2}, top_k=3)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"threshold": "high"}, "--threshold must be a number"),
        ({"threshold": "1.5"}, "<= 1"),
        ({"top_k": "0"}, ">= 1"),
        ({"batch_size": "2.5"}, "integer"),
        ({"precision": "fp8"}, "one of auto, fp32, fp16, bf16"),
        ({"tag_threshold": ["dog"]}, "TAG=VALUE"),
        ({"no_exif_transpose": "maybe"}, "true or false"),
        ({"classes": " , "}, "names no tag"),
    ],
)
def test_bad_values_are_one_clear_error_everywhere(values: dict, message: str) -> None:
    from pydantic import ValidationError

    from backend.settings import Settings

    with pytest.raises(ConfigError, match=message):
        ModelOptions.from_values(values, env={})
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_server_settings_carry_the_same_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from backend.settings import Settings

    monkeypatch.setenv("MODEL_SCORE_THRESHOLD", "0.25")
    monkeypatch.setenv("RAM_ANNOTATE_TOP_K", "2")
    settings = Settings(model_dir=tmp_path, checkpoint="c.pth")
    assert settings.model == ModelOptions(checkpoint="c.pth", threshold=0.25, top_k=2)
    assert settings.threshold_policy().top_k == 2


def test_the_default_checkpoint_is_written_once() -> None:
    """The default used to be spelled out in four places and they drifted."""
    hits = []
    for path in [*REPO.glob("ram_model/**/*.py"), *REPO.glob("backend/**/*.py"), *REPO.glob("plugin/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == DEFAULT_CHECKPOINT:
                hits.append(path.relative_to(REPO).as_posix())
    assert hits == ["ram_model/model/config.py", "ram_model/model/config.py"]  # the preset and the default


def test_no_other_module_declares_an_option_list() -> None:
    for path in [*REPO.glob("backend/**/*.py"), *REPO.glob("plugin/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "OPTION_NAMES = (" not in text, path


@settings(max_examples=200, deadline=None)
@given(
    probs=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12),
    cut=st.floats(0, 1, allow_nan=False),
    top_k=st.one_of(st.none(), st.integers(1, 5)),
)
def test_one_firing_rule(probs: list[float], cut: float, top_k: int | None) -> None:
    p = np.asarray(probs, dtype=np.float32)
    thresholds = np.full(len(p), cut, dtype=np.float32)
    fired = fired_indices(p, thresholds, top_k=top_k)
    strictly_above = [i for i in range(len(p)) if p[i] > thresholds[i]]
    assert sorted(fired.tolist()) == sorted(sorted(strictly_above, key=lambda i: (-p[i], i))[: top_k or None])
    assert all(p[a] >= p[b] for a, b in zip(fired, fired[1:]))
    names = [f"t{i}" for i in range(len(p))]
    vocab = TagVocabulary(tuple(names), tuple(names), thresholds)
    assert [t.index for t in ThresholdPolicy(top_k=top_k).select(p, vocab)] == fired.tolist()


def test_unmapped_labels_never_fire() -> None:
    assert fired_indices(np.array([0.9, 0.9]), np.array([np.nan, 0.5])).tolist() == [1]


def test_option_names_are_the_dataclass_fields() -> None:
    assert MODEL_OPTION_NAMES == tuple(ModelOptions().to_dict())


def test_classes_from_a_list_a_file_or_the_environment(tmp_path: Path) -> None:
    listing = tmp_path / "tags.txt"
    listing.write_text("# kept for the project\ndog\n\n  cat \ndog\n", encoding="utf-8")
    args = build_parser().parse_args(["tag", "x.png", "--classes", str(listing)])
    options = ModelOptions.from_values(vars(args), env={"RAM_ANNOTATE_CLASSES": "bird"})
    assert options.classes == ("dog", "cat") and options.engine_config().classes == ("dog", "cat")
    assert ModelOptions.from_values({}, env={"RAM_ANNOTATE_CLASSES": "bird, street sign"}).classes == (
        "bird", "street sign")
    assert ModelOptions.from_values({"classes": ["cat", "dog"]}, env={}).classes == ("cat", "dog")
    assert ModelOptions.from_values({}, env={}).classes is None
    assert ModelOptions.from_values({}, env={}).engine_config().classes is None


def test_every_engine_option_reaches_the_engine_config_without_a_mapping() -> None:
    """An option named like an EngineConfig field is passed through by name: adding one to
    ModelOptions (flag, setting, form field) needs no hand-written line in `engine_config`."""
    from dataclasses import fields

    from ram_model import EngineConfig

    engine_fields = {f.name for f in fields(EngineConfig)}
    shared = [spec for spec in MODEL_OPTIONS if spec.name in engine_fields]
    assert len(shared) >= 15
    values = {"device": "cpu", "precision": "fp32", "batch_size": 3, "decode_workers": 2, "compile": True,
              "gpu_decode": True, "fast_jpeg_decode": True, "trust_pickle": True, "classes": "dog,cat",
              "checkpoint": "random:tiny", "swin_config": "s.json", "head_config": "h.json", "tag_list": "t.txt",
              "tag_list_zh": "z.txt", "thresholds": "th.txt"}
    values = {name: value for name, value in values.items() if name in {spec.name for spec in shared}}
    config = ModelOptions.from_values({**values, "no_exif_transpose": True}, env={}).engine_config()
    options = ModelOptions.from_values(values, env={})
    assert all(getattr(config, spec.name) == getattr(options, spec.name) for spec in shared)
    assert config.exif_transpose is False



_NEW_ENGINE_OPTION = '''
import dataclasses, logging, os, sys
logging.disable(logging.ERROR)  # FiftyOne logs that a bare context belongs to no registered operator
from ram_model.model import config
from ram_model.option import option

# The one change a developer makes to add an engine option: a field declared on EngineConfig.
@dataclasses.dataclass(frozen=True)
class EngineConfig(config.EngineConfig):
    sharpen: float | None = option(None, "unsharp-mask strength applied before resizing", float,
                                   low=0.0, high=5.0, label="Sharpen")

config.EngineConfig = EngineConfig

from fiftyone.operators import types
from fiftyone.operators.executor import ExecutionContext

from backend.settings import Settings
from plugin.operators.inputs import add_model_options
from plugin.params import ModelParams
from ram_model.cli.main import build_parser
from ram_model.cli.options import engine_config_from_args
from ram_model.errors import ConfigError

parser = build_parser()
sub = next(a for a in parser._actions if a.dest == "command")
for command in ("tag", "serve", "detect"):
    assert "--sharpen" in sub.choices[command].format_help(), command
assert engine_config_from_args(parser.parse_args(["tag", "x.png", "--sharpen", "1.5"])).sharpen == 1.5
try:
    engine_config_from_args(parser.parse_args(["tag", "x.png", "--sharpen", "9"]))
    raise SystemExit("out-of-range value accepted")
except ConfigError as exc:
    assert "--sharpen must be <= 5" in str(exc), exc

settings = Settings(model_dir=sys.argv[1], sharpen="2")
assert settings.model.engine_config().sharpen == 2.0
os.environ["RAM_ANNOTATE_SHARPEN"] = "0.5"
assert Settings(model_dir=sys.argv[1]).model.engine_config().sharpen == 0.5
del os.environ["RAM_ANNOTATE_SHARPEN"]

form = types.Object()
add_model_options(ExecutionContext({"params": {}}), form)
prop = form.properties["sharpen"]
assert prop.view.label == "Sharpen" and "Unsharp-mask" in prop.view.description
assert ModelParams.from_mapping({"sharpen": "3"}, env={}).options.engine_config().sharpen == 3.0
print("seen everywhere")
'''


def test_an_engine_option_added_in_one_place_is_a_flag_a_setting_and_a_form_input(tmp_path: Path) -> None:
    """Issue 18: adding an engine option is one field on EngineConfig. A fresh interpreter adds one
    (and nothing else) before the rest of the package loads, then finds it as a CLI flag of every
    model command, a server setting and environment variable, a FiftyOne form input and a job param."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "FIFTYONE_DATABASE_URI": "mongodb://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", _NEW_ENGINE_OPTION, str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("seen everywhere"), done.stderr[-3000:]
