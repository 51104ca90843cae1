"""The model options: which engine runs, and which of its tags fire.

The engine options are declared on `EngineConfig`'s own fields (`ram_model.option`);
`ModelOptions` is derived from them plus the threshold options below. Every place that
lets a user pick the model or its thresholds reads `ModelOptions`: the command-line flags
of `tag`/`info`/`convert`/`serve`/`fiftyone` (`ram_model.cli.options`), the server's settings
(`backend.settings`), and the FiftyOne operator form and job parameters (`plugin.params`,
`plugin.operators.inputs`). A new field on `EngineConfig` made with `option(...)` is
therefore a flag, a setting, an environment variable and a form input at once.

Where a value comes from, first hit wins: an explicit value (flag, form field, keyword),
then the environment (`RAM_ANNOTATE_<NAME>`, plus the Label Studio names some options
also answer to), then the default.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from ..errors import ConfigError
from ..model.config import DEFAULT_CHECKPOINT, EngineConfig
from ..option import ENV_PREFIX, OptionSpec, declared_options, is_given, option, option_values, parse_option
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
    if not is_given(value):
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
class ThresholdOptions:
    """Which of the engine's tags fire (not engine state: a policy applied to its scores)."""

    threshold: float | None = option(
        None, "one threshold for every tag (overrides the class file)", float, group="thresholds",
        low=0.0, high=1.0, env_aliases=("MODEL_SCORE_THRESHOLD",), label="Global threshold",
    )
    tag_threshold: tuple[tuple[str, float], ...] = option(
        (), "per-tag threshold TAG=VALUE (repeatable or comma-separated), or a JSON file {tag: value}", tuple,
        group="thresholds", metavar="TAG=VALUE", label="Per-tag thresholds",
    )
    top_k: int | None = option(
        None, "keep at most k fired tags per image", int, group="thresholds", low=1, label="Keep at most k tags",
    )


class _ModelOptionsMethods:
    """The behaviour of `ModelOptions`; its fields are generated from the declarations."""

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
            if is_given(value):
                chosen[spec.name] = value
                continue
            for name in (spec.env, *spec.env_aliases):
                if is_given(env.get(name)):
                    chosen[spec.name] = env[name]
                    break
        return cls(**chosen)

    def engine_config(self) -> EngineConfig:
        """The engine these options describe: each engine option goes back to the field that
        declared it (a negated one, `no_exif_transpose`, as its negation)."""
        return EngineConfig(**option_values(EngineConfig, self.to_dict()))

    def threshold_policy(self) -> ThresholdPolicy:
        return ThresholdPolicy(threshold=self.threshold, per_tag=dict(self.tag_threshold) or None, top_k=self.top_k)

    def to_dict(self) -> dict[str, Any]:
        return {spec.name: getattr(self, spec.name) for spec in MODEL_OPTIONS}


def _parse(spec: OptionSpec, value: Any) -> Any:
    """One option's value in its declared type; TAG=VALUE pairs and tag lists have their own parsers."""
    if spec.kind is tuple:
        return parse_tag_thresholds(value)
    if spec.kind is list:
        return parse_class_names(value)
    return parse_option(spec, value)


def _derive_model_options() -> type:
    """`ModelOptions`: one field per option EngineConfig and ThresholdOptions declare, under its
    user-facing name and default, the declaration kept as the field's metadata."""
    declared = []
    for owner in (EngineConfig, ThresholdOptions):
        hints = get_type_hints(owner)  # real types: pydantic (the server settings) resolves them
        option_fields = [f for f in fields(owner) if "option" in f.metadata]
        for f, spec in zip(option_fields, declared_options(owner)):
            annotation = bool if spec.negated_as else hints[f.name]
            declared.append((spec.name, annotation, field(default=spec.default, metadata=f.metadata)))
    cls = make_dataclass(
        "ModelOptions", declared, bases=(_ModelOptionsMethods,), frozen=True,
        namespace={"__doc__": "Which checkpoint runs where, and which of its tags fire: the options declared on "
                              "EngineConfig and ThresholdOptions, as values parsed from flags, forms or the environment."},
    )
    cls.__module__ = __name__
    return cls


ModelOptions = _derive_model_options()
MODEL_OPTIONS: tuple[OptionSpec, ...] = (*declared_options(EngineConfig), *declared_options(ThresholdOptions))
MODEL_OPTION_NAMES: tuple[str, ...] = tuple(spec.name for spec in MODEL_OPTIONS)
