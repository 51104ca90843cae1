"""Option metadata declared on a config dataclass's own fields.

A field made with `option(...)` carries how a user meets it: help text, type, range,
choices, the form's label, its environment name. The command line
(`ram_model.cli.options.add_option_flags`), the server settings, the FiftyOne forms
(`plugin.operators.inputs.add_option_input`) and the parsers (`parse_option`) all read
these specs, so an option exists in one place: the field that stores it. `EngineConfig`
(engine options), `FinetuneConfig` (training options) and the plugin's job parameters
declare theirs this way.

This module sits at the bottom of the package (it imports nothing of ours but the errors),
so every layer can declare options.
"""
from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, field, fields
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["ENV_PREFIX", "OptionSpec", "declared_option", "declared_options", "is_given", "option", "option_values", "parse_flag",
           "parse_option"]

ENV_PREFIX = "RAM_ANNOTATE_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class OptionSpec:
    """How one option is presented and parsed; `name` and `default` come from its field."""

    help: str
    kind: type  # str, int, float, bool, tuple for TAG=VALUE pairs, or list for a list of names
    group: str = "model"  # which part of a form or `--help` it belongs to ("model", "thresholds", ...)
    label: str = ""  # the form's label; empty: derived from the name
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    metavar: str | None = None
    env_aliases: tuple[str, ...] = ()
    in_form: bool = True  # offered in the FiftyOne operator form
    # The user-facing name when the option is the negation of its field (`--no-exif-transpose`
    # sets `exif_transpose=False`): forms, flags and environment use this name, with default
    # `not default`.
    negated_as: str | None = None
    # The key a form or job mapping uses when it differs from the field name (a job's `batch_size`
    # is the form's `finetune_batch_size`, next to the model's own batch size).
    key: str | None = None
    required: bool = False  # a form must fill it in
    name: str = ""
    default: Any = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def description(self) -> str:
        """The help as a form shows it, a sentence under the input."""
        return self.help[:1].upper() + self.help[1:]

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def param(self) -> str:
        """The key of this option in a form's or a job's parameter mapping (and its flag's name)."""
        return self.key or self.name

    @property
    def flag(self) -> str:
        return "--" + self.param.replace("_", "-")


def option(default: Any, help: str, kind: type, **spec: Any) -> Any:
    """A dataclass field that is also a user-facing option (see `OptionSpec` for `spec`).
    A mutable default (dict, list) is given as a zero-argument callable."""
    metadata = {"option": OptionSpec(help=help, kind=kind, **spec)}
    if callable(default) and not isinstance(default, type):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def declared_options(cls: type) -> tuple[OptionSpec, ...]:
    """The options a dataclass declares, in field order, under their user-facing names."""
    specs = []
    for f in fields(cls):
        spec: OptionSpec | None = f.metadata.get("option")
        if spec is None:
            continue
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = None
        if spec.negated_as:
            specs.append(dataclasses.replace(spec, name=spec.negated_as, default=not default))
        else:
            specs.append(dataclasses.replace(spec, name=f.name, default=default))
    return tuple(specs)


def option_values(cls: type, values: Mapping[str, Any], *, given_only: bool = False, by_name: bool = False,
                  what: Callable[[OptionSpec], str] | None = None) -> dict[str, Any]:
    """The declared options of `cls` read from a form's, a job's or a flag namespace's mapping
    (keyed by each option's `param`, or its `name` with `by_name`), parsed, by field name (a
    negated option turned back); `given_only` leaves out those the mapping does not give, so the
    dataclass's defaults apply. `what` names an option in error messages (default: its flag)."""
    out: dict[str, Any] = {}
    option_fields = [f for f in fields(cls) if "option" in f.metadata]
    for f, spec in zip(option_fields, declared_options(cls)):
        raw = values.get(spec.name if by_name else spec.param)
        if given_only and not is_given(raw):
            continue
        value = parse_option(spec, raw, what=what(spec) if what else None)
        out[f.name] = (not value) if spec.negated_as else value
    return out


def declared_option(cls: type, name: str) -> OptionSpec:
    """One of the options `cls` declares, by its user-facing name."""
    for spec in declared_options(cls):
        if spec.name == name:
            return spec
    raise KeyError(f"{cls.__name__} declares no option {name!r}")


def is_given(value: Any) -> bool:
    """None, blank text and empty containers mean "not given" (a form's empty box, an unset flag)."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, dict)):
        return bool(value)
    return True


def parse_flag(value: Any, what: str) -> bool:
    """A yes/no value from a bool or the texts environment variables and forms use."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{what} must be true or false, not {value!r}")


def parse_option(spec: OptionSpec, value: Any, *, what: str | None = None) -> Any:
    """One option's value in its declared type, range and choices (the default when not given);
    ConfigError otherwise, naming the option as `what` (default: its flag). A list is
    comma-separated names or a sequence; TAG=VALUE pairs are parsed by their owner."""
    if not is_given(value):
        return spec.default
    what = what or spec.flag
    if spec.kind is bool:
        return parse_flag(value, what)
    if spec.kind is list:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))
    if spec.kind in (dict, tuple):
        return value
    if spec.kind is str:
        parsed: Any = str(value).strip()
    else:
        if isinstance(value, bool):
            raise ConfigError(f"{what} must be a number, not {value!r}")
        try:
            parsed = float(value) if spec.kind is float else _as_int(value)
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
