"""`ram-annotate`: the command line (`main`: tag, info, convert, demo and the parser;
`options`: the model flags every command shares; `thresholds`, `finetune`, `models`:
their sub-commands; `demo`: the demo picture).

`main` is the console script's target (`ram_model.cli:main`), resolved lazily so that
importing a sub-command module does not build the whole parser.
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from .main import main as _main

    return _main(argv)
