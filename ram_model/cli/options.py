"""Command-line flags for the model options, derived from `ram_model.inference.options`.

Flags default to "not given" (None), so `ModelOptions.from_values` can tell a flag the
user typed from one they left out, and fill the rest from the environment, then from
the declared defaults: `ram-annotate tag`, `serve` and `fiftyone` read options the same way.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping

from ..model.config import EngineConfig
from ..option import OptionSpec
from ..inference.options import DEFAULT_CHECKPOINT, MODEL_OPTIONS, ModelOptions
from ..inference.thresholds import ThresholdPolicy

__all__ = [
    "DEFAULT_CHECKPOINT",
    "add_finetune_data_flags",
    "add_option_flags",
    "add_model_options",
    "engine_config_from_args",
    "model_options_from_args",
    "threshold_policy_from_args",
]

_GROUP_TITLES = {"model": "model", "thresholds": "thresholds"}


def add_option_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, specs: Iterable[OptionSpec], *,
                     env: bool = True, aliases: Mapping[str, str] | None = None) -> None:
    """One flag per declared option (`ram_model.option`), defaulting to "not given" (None)
    so the option's own parser can tell a typed flag from an omitted one. `env`: the command
    also reads the option's environment variable (the help names it). `aliases`: a shorter
    spelling a command has always accepted, by option name (`--out` for `--output-dir`)."""
    for spec in specs:
        names = (spec.flag, aliases[spec.name]) if aliases and spec.name in aliases else (spec.flag,)
        shown_default = "" if spec.default in (None, False, (), {}) else f" (default: {spec.default})"
        help_text = f"{spec.help}{shown_default}" + (f" [{spec.env}]" if env else "")
        dest = spec.param
        if spec.kind is bool and spec.default is True:  # on unless switched off: the flag switches it off
            parser.add_argument("--no-" + spec.flag[2:], dest=dest, action="store_const", const=False, default=None,
                                help=f"switch off: {spec.help}")
        elif spec.kind is bool:
            parser.add_argument(*names, dest=dest, action="store_const", const=True, default=None, help=help_text)
        elif spec.kind is tuple:
            parser.add_argument(*names, dest=dest, action="append", default=None, metavar=spec.metavar,
                                help=help_text)
        else:
            parser.add_argument(*names, dest=dest, type=str, default=None, choices=spec.choices,
                                metavar=spec.metavar, required=spec.required and spec.default is None, help=help_text)


def add_model_options(parser: argparse.ArgumentParser, *, thresholds: bool = True) -> None:
    """Add one flag per model option (the threshold group only when `thresholds`)."""
    for group_name, title in _GROUP_TITLES.items():
        if group_name == "thresholds" and not thresholds:
            continue
        add_option_flags(parser.add_argument_group(title), [s for s in MODEL_OPTIONS if s.group == group_name])


def add_finetune_data_flags(parser: argparse.ArgumentParser, *, output_metavar: str, output_help: str) -> None:
    """Where a command reads finetune JSON exports and writes its result (`finetune`, `thresholds tune`)."""
    parser.add_argument("--data", action="append", required=True, metavar="EXPORT.json",
                        help="finetune JSON written by the export (image_path, caption, union_label_id, "
                             "parse_label_id); repeatable")
    parser.add_argument("--image-root", help="folder the entries' image_path are relative to (default: each JSON's folder)")
    parser.add_argument("--output", "-o", required=True, metavar=output_metavar, help=output_help)


def model_options_from_args(args: argparse.Namespace) -> ModelOptions:
    """The options a command was given, completed from the environment and the defaults."""
    return ModelOptions.from_values(vars(args))


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    return model_options_from_args(args).engine_config()


def threshold_policy_from_args(args: argparse.Namespace) -> ThresholdPolicy:
    return model_options_from_args(args).threshold_policy()
