"""`ram-annotate corrections export`: the server's corrections as training data, without Label Studio.

Reads the store the server writes (`--store`, default MODEL_DIR/corrections.sqlite3, or
mongodb://HOST/DB) and the images it cached under MODEL_DIR/images when it fetched
them. Formats: `ram` (RAM's official finetune JSON, what `ram-annotate finetune` and
the server's training jobs read; image paths relative to MODEL_DIR/images),
`labelstudio` (tasks with the final annotation and our prediction, to import
elsewhere) and `fiftyone` (one object per image: filepath, labels, RAM's tags).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("corrections", help="the Label Studio corrections the server stored")
    sub = parser.add_subparsers(dest="corrections_command", required=True)
    export = sub.add_parser("export", help="write a project's corrections as finetune JSON, LS tasks or FiftyOne JSON",
                            description=__doc__.splitlines()[0])
    export.add_argument("output", metavar="OUT", type=Path)
    export.add_argument("--project", required=True, help="Label Studio project id")
    export.add_argument("--format", dest="fmt", choices=["ram", "labelstudio", "fiftyone"], default="ram")
    export.add_argument("--model-dir", type=Path, default=None,
                        help="the server's MODEL_DIR (default: $MODEL_DIR or ./ram-annotate-data)")
    export.add_argument("--store", default=None,
                        help="the server's --store (default MODEL_DIR/corrections.sqlite3)")
    export.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from .export import export_corrections
    from ..store import open_store

    model_dir = args.model_dir or Path(os.environ.get("MODEL_DIR") or "ram-annotate-data")
    spec = args.store or os.environ.get("RAM_ANNOTATE_STORE") or str(model_dir / "corrections.sqlite3")
    if "://" not in spec and not Path(spec).is_file():
        print(f"error: no corrections store at {spec} (give --model-dir or --store)", file=sys.stderr)
        return 2
    if not args.output.parent.is_dir():
        print(f"error: the folder of {args.output} does not exist; create it first", file=sys.stderr)
        return 2
    image_root = model_dir / "images"
    try:
        with open_store(spec) as store:
            summary = export_corrections(store, str(args.project), args.output, fmt=args.fmt, image_root=image_root)
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps({"output": str(args.output), "format": args.fmt, **summary.to_dict()}))
    if not summary.exported:
        kept = " (the existing file was left as it was)" if args.output.exists() else ""
        print(f"error: project {args.project} has nothing to export{kept}", file=sys.stderr)
        return 1
    if args.fmt == "ram":
        print(f"train on it with: ram-annotate finetune --data {args.output} --image-root {image_root} "
              "--checkpoint BASE --output RUN_DIR", file=sys.stderr)
    return 0 if summary.exported else 1
