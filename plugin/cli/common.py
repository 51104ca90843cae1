"""What the `ram-annotate fiftyone ...` sub-commands share: the dataset/view flags, the
server flag, model params from flags, progress bars and the one way a job's result or
error is printed. Both command modules import it, so neither imports the other.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from plugin.errors import PluginInputError

__all__ = ["add_job", "add_server", "add_target", "model_params", "progress", "run", "target"]


def add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="FiftyOne dataset name")
    parser.add_argument("--view", help="a saved view of the dataset to work on (default: all samples)")
    parser.add_argument("--no-progress", action="store_true")


def add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-url", help="use a running ram-annotate server (default: $RAM_ANNOTATE_URL; "
                                             "credentials from $RAM_ANNOTATE_AUTH as user:password)")


def add_job(jobs: argparse._SubParsersAction, name: str, help: str, params: type,
            func: Callable[[argparse.Namespace], int], *, model: bool = False, thresholds: bool = True,
            server: bool = False, aliases: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """A sub-command for one job: the dataset flags, one flag per option its params class declares
    (`ram_model.option`), and with `model` the model options (their threshold group with
    `thresholds`), with `server` the shared-server flag."""
    from ram_model.cli.options import add_model_options, add_option_flags
    from ram_model.option import declared_options

    parser = jobs.add_parser(name, help=help)
    add_target(parser)
    add_option_flags(parser, declared_options(params), env=False, aliases=aliases)
    if model:
        add_model_options(parser, thresholds=thresholds)
    if server:
        add_server(parser)
    parser.set_defaults(func=func)
    return parser


def model_params(args: argparse.Namespace):
    from plugin.params import ModelParams

    secrets = {"RAM_ANNOTATE_URL": args.server_url} if args.server_url else None
    return ModelParams.from_mapping(vars(args), secrets=secrets)


def target(args: argparse.Namespace):
    import fiftyone as fo

    if not fo.dataset_exists(args.dataset):
        raise PluginInputError(f"No FiftyOne dataset named {args.dataset!r}; datasets: {fo.list_datasets()}")
    dataset = fo.load_dataset(args.dataset)
    if args.view:
        if not dataset.has_saved_view(args.view):
            raise PluginInputError(f"Dataset {args.dataset!r} has no saved view {args.view!r}: "
                                   f"{dataset.list_saved_views()}")
        return dataset.load_saved_view(args.view)
    return dataset


def progress(args: argparse.Namespace, what: str) -> Callable[[int, int], None] | None:
    if args.no_progress:
        return None
    from tqdm import tqdm

    bar = tqdm(desc=what, unit="sample", file=sys.stderr)

    def report(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return report


def run(job: Callable[[], Any]) -> int:
    from ram_model import RamModelError

    try:
        result = job()
    except (PluginInputError, RamModelError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    return 0
