"""`ram-annotate`: tag images, inspect and convert checkpoints.

Integration packages add their own sub-commands (`serve`, `fiftyone`) through the
`ram_annotate.commands` entry-point group, so this module never imports them.
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Sequence

from .options import add_model_options, engine_config_from_args, threshold_policy_from_args
from ..errors import RamModelError
from ..inference.pipeline import batched
from ..scale.options import add_ray_options
from .tag_rows import (CHUNK, RANDOM_WEIGHTS_WARNING, evidence_request, expand_inputs, plan_todo, policy_digest,
                       result_row, write_rows)

__all__ = ["main", "build_parser"]

# ram_model's own sub-commands that live in their own modules; each has `register(sub)`.
# A module is imported only here, when the parser is built.
_COMMAND_MODULES: tuple[str, ...] = ("ram_model.cli.thresholds", "ram_model.cli.finetune", "ram_model.cli.models",
                                     "ram_model.cli.search", "ram_model.cli.detect")


def _add_tag_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tag", help="tag images; writes JSON Lines, one object per image",
                       description="Tag image files, folders (recursively) or globs with RAM / RAM++.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_model_options(p)
    p.add_argument("--output", "-o", help="JSON Lines file (default: stdout). Re-running with the same "
                                          "file skips images already in it.")
    p.add_argument("--all-scores", action="store_true", help="include every class's probability")
    p.add_argument("--embedding", action="store_true", help="include the 512-d image embedding")
    p.add_argument("--evidence", action="store_true",
                   help="include an evidence map (token grid, 0..1) and a box per fired tag: where in the "
                        "image the model sees it (README: Evidence maps)")
    p.add_argument("--retry-errors", action="store_true", help="on resume, redo images that failed before")
    p.add_argument("--overwrite", action="store_true", help="start the output file afresh")
    p.add_argument("--no-progress", action="store_true")
    add_ray_options(p)
    p.set_defaults(func=_cmd_tag)


def _add_info_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="variant, sizes and key report of a checkpoint")
    p.add_argument("checkpoint_path", nargs="?", metavar="CKPT", help="same as --checkpoint")
    add_model_options(p, thresholds=False)
    p.add_argument("--keys", action="store_true", help="list every skipped key, not just counts")
    p.set_defaults(func=_cmd_info)


def _add_convert_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="write an fp16 safetensors file of the tagging path")
    p.add_argument("checkpoint_path", metavar="CKPT")
    p.add_argument("output", metavar="OUT.safetensors")
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    add_model_options(p, thresholds=False)
    p.set_defaults(func=_cmd_convert)


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="try tagging without the weights (random:tiny; its tags mean nothing)",
                       description="Tag a generated picture (or PATHs) with random:tiny, a tiny random-weight "
                                   "model built on the fly: it shows the output format and the tools, "
                                   "not RAM's quality. Its tags mean nothing.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="images to tag (default: a generated picture)")
    p.add_argument("--output", "-o", help="JSON Lines file (default: stdout)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ram-annotate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_tag_parser(sub)
    _add_info_parser(sub)
    _add_convert_parser(sub)
    _add_demo_parser(sub)
    for module in _COMMAND_MODULES:
        import_module(module).register(sub)
    for ep in entry_points(group="ram_annotate.commands"):
        try:
            ep.load()(sub)
        except ImportError as e:  # the integration's extra is not installed
            sub.add_parser(ep.name, help=f"unavailable: {e}").set_defaults(
                func=lambda _a, _e=e, _n=ep.name: _fail(f"'{_n}' needs more packages: {_e}"))
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _load_engine(args: argparse.Namespace):
    from ..inference.engine import TaggingEngine

    engine = TaggingEngine.from_config(engine_config_from_args(args))
    if engine.random_weights:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
    return engine


def _cmd_tag(args: argparse.Namespace) -> int:
    paths = expand_inputs(args)
    out_path = Path(args.output) if args.output else None
    if out_path is not None and out_path.is_dir():
        return _fail(f"--output {out_path} is a folder; name a file, e.g. {out_path / 'tags.jsonl'}")
    if out_path is not None and not out_path.absolute().parent.is_dir():
        return _fail(f"--output {out_path}: folder {out_path.absolute().parent} does not exist")
    policy = threshold_policy_from_args(args)
    if getattr(args, "ray", None):  # the same run on a Ray cluster (ram_model.scale; needs the [ray] extra)
        if args.evidence:
            return _fail("--evidence runs in this process only; drop --ray (or --evidence)")
        from .ray_tag import tag_on_ray

        return tag_on_ray(args, paths, out_path, policy)
    engine = _load_engine(args)
    thresholds = policy.resolve(engine.vocab)
    todo = plan_todo(args, paths, out_path,
                     (engine.model_version, policy_digest(thresholds, policy, args.evidence)))
    # One stream over the whole run (the decode look-ahead never restarts), written a chunk at a time.
    with closing(engine.predict_iter(todo, with_embedding=args.embedding,
                                     evidence=evidence_request(args, policy, thresholds))) as predictions:
        row_batches = ([result_row(p, engine, policy, thresholds, args) for p in preds]
                       for preds in batched(predictions, CHUNK))
        return write_rows(args, out_path, row_batches, len(todo))


def _cmd_info(args: argparse.Namespace) -> int:
    from ..weights.model_files import load_model

    loaded = load_model(engine_config_from_args(args))
    model = loaded.model

    def count(prefix: str) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))

    report = loaded.report
    info: dict[str, Any] = {
        "checkpoint": str(loaded.path),
        "file_bytes": loaded.path.stat().st_size,
        "variant": loaded.variant,
        "num_classes": len(loaded.vocab),
        "image_size": loaded.swin.image_res,
        "swin_config": loaded.swin.to_dict(),
        "head_config": loaded.head.to_dict(),
        "parameters": {
            "total": sum(p.numel() for p in model.parameters()),
            "visual_encoder": count("visual_encoder."),
            "tagging_head": count("tagging_head."),
            "label_embed": count("label_embed"),
        },
        "model_version": loaded.model_version,
        "random_weights": loaded.random_weights,
        "keys": report.summary(),
    }
    if args.keys:
        info["skipped_training_only"] = report.skipped_training_only
        info["skipped_buffers"] = report.skipped_buffers
        info["renamed"] = report.renamed
    if loaded.random_weights:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from ..weights.convert import CONVERTED_SUFFIX, convert_checkpoint
    from ..weights.model_files import load_model

    if Path(args.output).suffix != CONVERTED_SUFFIX:  # before the (slow) load
        return _fail(f"the output name must end in {CONVERTED_SUFFIX}, not {args.output!r}")
    loaded = load_model(engine_config_from_args(args))
    out = convert_checkpoint(loaded, args.output, dtype=args.dtype)
    before, after = loaded.path.stat().st_size, out.stat().st_size
    print(f"wrote {out} ({after / 2**20:.1f} MiB, {after / before:.0%} of {before / 2**20:.1f} MiB)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from .demo import DEMO_BANNER, write_demo_picture

    print(DEMO_BANNER, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ram-annotate-demo-") as folder:
        paths = args.paths or [str(write_demo_picture(Path(folder) / "demo.png"))]
        argv = ["tag", *paths, "--checkpoint", "random:tiny", "--top-k", "5"]
        argv += ["--output", args.output] if args.output else []
        argv += ["--no-progress"] if args.no_progress or not args.paths else []
        tag_args = build_parser().parse_args(argv)
        return _cmd_tag(tag_args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "checkpoint_path", None):  # `info CKPT` / `convert CKPT OUT`
        args.checkpoint = args.checkpoint_path
    try:
        return int(args.func(args) or 0)
    except RamModelError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
