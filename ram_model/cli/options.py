"""Command-line flags for the model options, derived from `ram_model.inference.options`.

Flags default to "not given" (None), so `ModelOptions.from_values` can tell a flag the
user typed from one they left out, and fill the rest from the environment, then from
the declared defaults: `ram-annotate tag`, `serve` and `fiftyone` read options the same way.
"""
from __future__ import annotations

import argparse

from ..model.config import EngineConfig
from ..inference.options import DEFAULT_CHECKPOINT, MODEL_OPTIONS, ModelOptions
from ..inference.thresholds import ThresholdPolicy

__all__ = [
    "DEFAULT_CHECKPOINT",
    "add_model_options",
    "engine_config_from_args",
    "model_options_from_args",
    "threshold_policy_from_args",
]

_GROUP_TITLES = {"model": "model", "thresholds": "thresholds"}


def add_model_options(parser: argparse.ArgumentParser, *, thresholds: bool = True) -> None:
    """Add one flag per model option (the threshold group only when `thresholds`)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in MODEL_OPTIONS:
        if spec.group == "thresholds" and not thresholds:
            continue
        group = groups.get(spec.group) or groups.setdefault(spec.group, parser.add_argument_group(_GROUP_TITLES[spec.group]))
        shown_default = "" if spec.default in (None, False, ()) else f" (default: {spec.default})"
        help_text = f"{spec.help}{shown_default} [{spec.env}]"
        if spec.kind is bool:
            group.add_argument(spec.flag, action="store_const", const=True, default=None, help=help_text)
        elif spec.kind is tuple:
            group.add_argument(spec.flag, action="append", default=None, metavar=spec.metavar, help=help_text)
        else:
            group.add_argument(spec.flag, type=str, default=None, choices=spec.choices, metavar=spec.metavar,
                               help=help_text)


def model_options_from_args(args: argparse.Namespace) -> ModelOptions:
    """The options a command was given, completed from the environment and the defaults."""
    return ModelOptions.from_values(vars(args))


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    return model_options_from_args(args).engine_config()


def threshold_policy_from_args(args: argparse.Namespace) -> ThresholdPolicy:
    return model_options_from_args(args).threshold_policy()
