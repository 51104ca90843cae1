"""The `--ray*` flags of `ram-annotate tag` (declared here, read by `ram_model.cli.ray_tag`)."""
from __future__ import annotations

import argparse

__all__ = ["add_ray_options", "RAY_TARGET_HELP"]

RAY_TARGET_HELP = ("local: start a local Ray cluster for this run; auto: join the cluster RAY_ADDRESS or "
                   "`ray start` names; ADDRESS (host:port or ray://host:port): join that one")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """Flags for running the command on a Ray cluster; without `--ray` none of them matters."""
    g = parser.add_argument_group("Ray cluster (needs the [ray] extra)")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="local|auto|ADDRESS",
                   help=f"run on a Ray cluster: {RAY_TARGET_HELP} (without a value: local; then put --ray "
                        "after the paths, or it takes the first path as its value)")
    g.add_argument("--ray-actors", type=_positive_int, default=None, metavar="N",
                   help="model actors, each holding one engine (default: one per GPU on GPU clusters, else 1)")
    g.add_argument("--ray-gpus-per-actor", type=_non_negative_float, default=None, metavar="G",
                   help="GPUs each actor reserves (default: 1 where the cluster has GPUs and --device is not "
                        "cpu, else 0; a fraction is a scheduling label, not a memory limit)")
    g.add_argument("--ray-cpus-per-actor", type=_non_negative_float, default=1.0, metavar="C",
                   help="CPUs each actor reserves (default: 1)")
    g.add_argument("--ray-batch-size", type=_positive_int, default=None, metavar="N",
                   help="images per Ray batch handed to an actor (default: 16, at least the engine's batch size)")
