"""`ram-annotate fiftyone ...`: the plugin's jobs from a shell (`main`: tag, disagreements,
export, similarity; `review`: the review round; `common`: what both share).

`register` is the `ram_annotate.commands` entry point; it is resolved here lazily so that
naming the package costs nothing until the parser is built.
"""
from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from plugin.cli.main import register as _register

    _register(subparsers)
