"""The model options, declared once: name, type, default, help and environment name.

Every place that lets a user pick the model or its thresholds derives from
`ModelOptions`: the command-line flags of `tag`/`info`/`convert`/`serve`/`fiftyone`
(`ram_model.cli.options`), the server's settings (`backend.settings`), and the FiftyOne
operator form and job parameters (`plugin.params`, `plugin.operators.inputs`). Adding an option
here adds it everywhere; no copy can drift.

Where a value comes from, first hit wins: an explicit value (flag, form field, keyword),
then the environment (`RAM_ANNOTATE_<NAME>`, plus the Label Studio names some options
also answer to), then the default below.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..model.config import PRESETS, EngineConfig
from ..errors import ConfigError
from .thresholds import ThresholdPolicy

__all__ = [
    "DEFAULT_CHECKPOINT",
    "ENV_PREFIX",
    "MODEL_OPTIONS",
    "MODEL_OPTION_NAMES",
    "ModelOptions",
    "OptionSpec",
    "parse_class_names",
    "parse_tag_thresholds",
]

DEFAULT_CHECKPOINT = "ram_plus_swin_large_14m"
ENV_PREFIX = "RAM_ANNOTATE_"
_PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class OptionSpec:
    """How one option is presented and parsed; the name and default come from the field."""

    help: str
    kind: type  # str, int, float, bool, tuple for TAG=VALUE pairs, or list for a list of tag names
    group: str = "model"  # "model" (which engine) or "thresholds" (which tags fire)
    label: str = ""  # the form's label; empty: derived from the name
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    metavar: str | None = None
    env_aliases: tuple[str, ...] = ()
    in_form: bool = True  # offered in the FiftyOne operator form
    name: str = ""
    default: Any = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


def _option(default: Any, help: str, kind: type, **spec: Any) -> Any:
    return field(default=default, metadata={"option": OptionSpec(help=help, kind=kind, **spec)})


def parse_tag_thresholds(value: Any) -> tuple[tuple[str, float], ...]:
    """Per-tag thresholds from `TAG=VALUE` items (a list, or one comma-separated string
    as a form's text box holds), a JSON file `{tag: value}`, or a mapping; sorted pairs."""
    if value in (None, "", (), [], {}):
        return ()
    if isinstance(value, Mapping):
        items: list[tuple[str, Any]] = list(value.items())
    else:
        texts = [value] if isinstance(value, str) else list(value)
        items = []
        for text in texts:
            if isinstance(text, (tuple, list)) and len(text) == 2:
                items.append((str(text[0]), text[1]))
                continue
            text = str(text).strip()
            if "=" not in text and text and Path(text).is_file():
                try:
                    data = json.loads(Path(text).read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError, RecursionError) as exc:
                    raise ConfigError(f"tag threshold file {text}: {exc or 'nested too deeply'}") from None
                if not isinstance(data, dict):
                    raise ConfigError(f"tag threshold file {text} must hold a JSON object {{tag: value}}")
                items.extend(data.items())
                continue
            for piece in text.split(","):
                name, sep, number = piece.strip().rpartition("=")
                if not sep or not name.strip():
                    raise ConfigError(f"per-tag thresholds are written TAG=VALUE, got {piece.strip()!r}")
                items.append((name.strip(), number))
    pairs: dict[str, float] = {}
    for name, number in items:
        try:
            threshold = float(number)
        except (TypeError, ValueError):
            raise ConfigError(f"threshold of {name!r}: {number!r} is not a number") from None
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold of {name!r} must lie in [0.0, 1.0], not {threshold}")
        pairs[str(name)] = threshold
    return tuple(sorted(pairs.items()))


def parse_class_names(value: Any, *, keep_repeats: bool = False) -> tuple[str, ...] | None:
    """Tag names from `a,b,c`, a file with one tag per line (a path that exists is a file;
    blank lines and `#` comments are skipped), or a list of names; None when none are given.
    A repeated name is dropped unless `keep_repeats` (open-set classes refuse repeats)."""
    if not _given(value):
        return None
    texts = [value] if isinstance(value, str) else [str(v) for v in value]
    names: list[str] = []
    for text in texts:
        text = text.strip()
        if text and Path(text).is_file():
            try:
                lines = Path(text).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"class file {text}: {exc}") from None
            names.extend(line.strip() for line in lines if not line.strip().startswith("#"))
        else:
            names.extend(text.split(","))
    chosen = tuple(n.strip() for n in names if n.strip())
    chosen = chosen if keep_repeats else tuple(dict.fromkeys(chosen))
    if not chosen:
        raise ConfigError(f"--classes names no tag: {value!r}")
    return chosen


@dataclass(frozen=True)
class ModelOptions:
    """Which checkpoint runs where, and which of its tags fire."""

    checkpoint: str = _option(
        DEFAULT_CHECKPOINT,
        f"local .pth/.safetensors, a preset ({', '.join(PRESETS)}), random:tiny (no download; random tags), hf://owner/repo/file "
        "or registry://ROOT/NAME",
        str,
        label="Checkpoint",
    )
    swin_config: str | None = _option(
        None, "Swin JSON (default: the checkpoint's own, else Swin-L 384)", str, label="Swin config file"
    )
    head_config: str | None = _option(
        None, "tagging-head JSON, q2l_config.json format (default: the checkpoint's own or the official one)", str,
        label="Tagging-head config file",
    )
    tag_list: str | None = _option(
        None, "English tag list, one per line (default: the official 4,585 tags)", str, label="English tag list file"
    )
    tag_list_zh: str | None = _option(
        None, "Chinese tag list aligned with the English one", str, label="Chinese tag list file"
    )
    thresholds: str | None = _option(
        None, "class-threshold file, one per line (default: the official one)", str, label="Class-threshold file"
    )
    device: str = _option("auto", "auto, cpu, cuda, cuda:N or mps", str, label="Device")
    precision: str = _option(
        "auto", "inference precision (auto: fp16 on CUDA, bf16 on CPUs with AMX, fp32 on other CPUs; fp32: exact)",
        str, choices=_PRECISIONS, label="Precision"
    )
    compile: bool = _option(
        False, "torch.compile the model (long runs: minutes to compile per batch shape, then faster; "
        "falls back to eager if it can't compile)", bool, in_form=False,
    )
    batch_size: int | None = _option(
        None, "images per forward pass (default: 1 on CPU, 32 on GPU)", int, low=1, high=1024, label="Batch size"
    )
    decode_workers: int | None = _option(
        None, "image decoding threads (default: one per core, 2 to 8; 0 decodes on the main thread)", int,
        low=0, high=64, label="Decode workers",
    )
    gpu_decode: bool = _option(
        False, "decode JPEGs on the CUDA GPU (nvJPEG via torchvision); Pillow for other images", bool,
        label="Decode JPEGs on the GPU",
    )
    fast_jpeg_decode: bool = _option(
        False, "decode JPEGs at least twice the model's input size at 1/2-1/8 scale (2-5x cheaper decoding; "
        "pixels differ slightly from the official pipeline)", bool, label="Fast JPEG decoding",
    )
    no_exif_transpose: bool = _option(
        False, "ignore EXIF orientation (exact parity with the official pipeline)", bool,
        label="Ignore EXIF orientation",
    )
    classes: tuple[str, ...] | None = _option(
        None, "compute only these tags: a,b,c or a file with one tag per line (default: every tag; "
        "scores equal the full model's, and fewer tags run faster)", list, metavar="TAGS|FILE",
        label="Only these tags",
    )
    open_set: bool = _option(
        False, "--classes may name classes that are not RAM tags (open-set: scored from CLIP text embeddings "
        "of prompt templates; threshold 0.5)", bool, in_form=False, label="Open-set classes",
    )
    descriptions: str | None = _option(
        None, 'open-set classes from a JSON file {"tag": ["description", ...]} (the official RAM++ format; '
        "its tags are the classes unless --classes is given)", str, metavar="FILE", in_form=False,
        label="Class descriptions file",
    )
    text_encoder: str | None = _option(
        None, "CLIP text encoder for open-set classes and text search: a Hugging Face repo, a local folder or "
        "random:tiny (random weights) (default: openai/clip-vit-base-patch16)", str, in_form=False,
        label="Text encoder",
    )
    trust_pickle: bool = _option(
        False, "allow checkpoints that contain pickled Python objects (only for files you trust)", bool,
        in_form=False,
    )
    threshold: float | None = _option(
        None, "one threshold for every tag (overrides the class file)", float, group="thresholds",
        low=0.0, high=1.0, env_aliases=("MODEL_SCORE_THRESHOLD",), label="Global threshold",
    )
    tag_threshold: tuple[tuple[str, float], ...] = _option(
        (), "per-tag threshold TAG=VALUE (repeatable or comma-separated), or a JSON file {tag: value}", tuple,
        group="thresholds", metavar="TAG=VALUE", label="Per-tag thresholds",
    )
    top_k: int | None = _option(
        None, "keep at most k fired tags per image", int, group="thresholds", low=1, label="Keep at most k tags",
    )

    def __post_init__(self) -> None:
        raw_classes = self.classes
        for spec in MODEL_OPTIONS:
            object.__setattr__(self, spec.name, _parse(spec, getattr(self, spec.name)))
        if (self.open_set or self.descriptions) and self.classes is not None:
            given = parse_class_names(raw_classes, keep_repeats=True) or ()
            if len(given) != len(self.classes):
                twice = next(n for i, n in enumerate(given) if n in given[:i])
                raise ConfigError(f"class {twice!r} is given twice")

    @classmethod
    def from_values(
        cls, values: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None
    ) -> "ModelOptions":
        """Explicit `values` (None or "" mean "not given"), then `env`, then defaults.

        Keys that are not model options are ignored, so a whole form or argparse
        namespace can be passed. `env=None` reads the process environment.
        """
        values = values or {}
        env = os.environ if env is None else env
        chosen: dict[str, Any] = {}
        for spec in MODEL_OPTIONS:
            value = values.get(spec.name)
            if _given(value):
                chosen[spec.name] = value
                continue
            for name in (spec.env, *spec.env_aliases):
                if _given(env.get(name)):
                    chosen[spec.name] = env[name]
                    break
        return cls(**chosen)

    def engine_config(self) -> EngineConfig:
        """The engine these options describe: every option named like an `EngineConfig` field
        goes there as is (so a new engine option needs no line here); `--no-exif-transpose`
        is the one spelled as its negation."""
        engine_fields = {f.name for f in fields(EngineConfig)}
        values = {spec.name: getattr(self, spec.name) for spec in MODEL_OPTIONS if spec.name in engine_fields}
        return EngineConfig(**values, exif_transpose=not self.no_exif_transpose)

    def threshold_policy(self) -> ThresholdPolicy:
        return ThresholdPolicy(threshold=self.threshold, per_tag=dict(self.tag_threshold) or None, top_k=self.top_k)

    def to_dict(self) -> dict[str, Any]:
        return {spec.name: getattr(self, spec.name) for spec in MODEL_OPTIONS}


def _given(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, dict)):
        return bool(value)
    return True


def _parse(spec: OptionSpec, value: Any) -> Any:
    """One option's value in its declared type, range and choices; ConfigError otherwise."""
    if spec.kind is tuple:
        return parse_tag_thresholds(value)
    if spec.kind is list:
        return parse_class_names(value)
    if not _given(value):
        return spec.default
    what = spec.flag
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{what} must be true or false, not {value!r}")
    if spec.kind is str:
        parsed: Any = str(value).strip()
    else:
        if isinstance(value, bool):
            raise ConfigError(f"{what} must be a number, not {value!r}")
        try:
            parsed = spec.kind(value) if spec.kind is float else _as_int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{what} must be {'an integer' if spec.kind is int else 'a number'}, not {value!r}") from None
        if parsed != parsed:  # NaN
            raise ConfigError(f"{what} must be a number, not NaN")
        if spec.low is not None and parsed < spec.low:
            raise ConfigError(f"{what} must be >= {spec.low:g}, not {parsed}")
        if spec.high is not None and parsed > spec.high:
            raise ConfigError(f"{what} must be <= {spec.high:g}, not {parsed}")
    if spec.choices is not None and parsed not in spec.choices:
        raise ConfigError(f"{what} must be one of {', '.join(spec.choices)}, not {value!r}")
    return parsed


def _as_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def _specs() -> tuple[OptionSpec, ...]:
    out = []
    for f in fields(ModelOptions):
        spec: OptionSpec = f.metadata["option"]
        default = f.default if f.default is not MISSING else None
        out.append(OptionSpec(**{**spec.__dict__, "name": f.name, "default": default}))
    return tuple(out)


MODEL_OPTIONS: tuple[OptionSpec, ...] = _specs()
MODEL_OPTION_NAMES: tuple[str, ...] = tuple(spec.name for spec in MODEL_OPTIONS)
