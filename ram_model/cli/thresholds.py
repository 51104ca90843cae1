"""`ram-annotate thresholds tune`: per-class thresholds fitted to a project's reviewed labels.

Reads the finetune JSON our export writes, runs the model over its images, and tunes each
class's cut on the reviewed cells (`ram_model.review.tune_thresholds`). Which cells are
reviewed follows docs/seams.md: an entry's `reviewed_label_id` when it has one, else the
union of every entry's `union_label_id` in the same file (the classes that project uses);
every other cell is unknown and takes no part.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError
from ..option import declared_options, option_values
from ..review.thresholds_tuning import TuningOptions
from .options import add_finetune_data_flags, add_model_options, add_option_flags

__all__ = ["register", "reviewed_label_matrix"]

# How many of the largest threshold changes the summary lists.
_SUMMARY_ROWS = 10


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("thresholds", help="per-project class thresholds",
                           description="Per-class thresholds fitted to reviewed labels.")
    actions = group.add_subparsers(dest="thresholds_command", required=True)
    p = actions.add_parser(
        "tune", help="tune class thresholds on a finetune export",
        description="Run the model over the images of finetune JSON export(s) and write the per-class "
                    "thresholds that fit the reviewed labels best (one per line, the official format), "
                    "plus OUTPUT.report.json with the counts, precision and recall per class.")
    add_finetune_data_flags(p, output_metavar="thresholds.txt", output_help="the thresholds file to write")
    add_option_flags(p.add_argument_group("tuning"), declared_options(TuningOptions), env=False)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    p.add_argument("--no-progress", action="store_true")
    add_model_options(p, thresholds=False)
    p.set_defaults(func=_cmd_tune)


def reviewed_label_matrix(files: Sequence[Sequence[object]], num_classes: int) -> np.ndarray:
    """(N, K) int8 labels for the entries of several finetune files, in order: 1 positive,
    0 reviewed negative, -1 unknown.

    ``files`` holds one list of ``FinetuneRecord`` per file; the file matters because an
    entry without ``reviewed_label_id`` takes its file's union of positives as reviewed.
    """
    from ..review import reviewed_label_matrix as matrix

    positives, reviewed = [], []
    for records in files:
        file_union = sorted({i for record in records for i in record.union_label_id})
        for record in records:
            positives.append(record.union_label_id)
            own = getattr(record, "reviewed_label_id", None)
            reviewed.append(own if own is not None else file_union)
    return matrix(positives, reviewed, num_classes)


def _cmd_tune(args: argparse.Namespace) -> int:
    from .main import _fail, _load_engine
    from ..review import FinetuneFormatError, read_finetune_json, tune_thresholds
    from ..review.thresholds_tuning import format_threshold, report_path

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        return _fail(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        return _fail(f"folder {output.parent} does not exist")
    try:
        tuning = TuningOptions(**option_values(TuningOptions, vars(args), given_only=True))
    except (ValueError, ConfigError) as e:
        return _fail(str(e))
    engine = _load_engine(args)
    num_classes = len(engine.vocab)
    files, paths = [], []
    try:
        for data in args.data:
            records = read_finetune_json(data, num_classes=num_classes, image_root=args.image_root)
            root = Path(args.image_root) if args.image_root else Path(data).parent
            files.append(records)
            paths += [str(Path(r.image_path) if Path(r.image_path).is_absolute() else root / r.image_path)
                      for r in records]
    except (FinetuneFormatError, FileNotFoundError) as e:
        return _fail(str(e))
    if not paths:
        return _fail("the finetune file(s) hold no entries")
    labels = reviewed_label_matrix(files, num_classes)

    probs = _predict(engine, paths, progress=not args.no_progress)
    ok = ~np.isnan(probs).any(axis=1)
    if not ok.all():
        print(f"{int((~ok).sum())} of {len(paths)} images could not be read and are left out", file=sys.stderr)
    try:
        tuned = tune_thresholds(labels[ok], probs[ok], prior=engine.vocab.thresholds, **asdict(tuning))
    except ValueError as e:
        return _fail(str(e))
    tuned.write(output, names=engine.vocab.names)
    _print_summary(tuned, engine.vocab.names, int(ok.sum()), output, report_path(output), format_threshold)
    return 0


def _predict(engine, paths: list[str], *, progress: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(N, K) probabilities; a row of NaN for an image that failed. Each image is run once."""
    unique = list(dict.fromkeys(paths))
    by_path: dict[str, np.ndarray] = {}
    with tqdm(total=len(unique), unit="img", disable=not progress, file=sys.stderr) as bar, \
            closing(engine.predict_iter(unique)) as predictions:
        for path, pred in zip(unique, predictions):
            if pred.ok:
                by_path[path] = pred.probs
            else:
                print(f"{path}: {pred.error}", file=sys.stderr)
            bar.update(1)
    failed = np.full(len(engine.vocab), np.nan, dtype=np.float32)
    return np.stack([by_path.get(path, failed) for path in paths])


def _print_summary(tuned, names, images: int, output: Path, report: Path, fmt) -> None:  # type: ignore[no-untyped-def]
    counts = {s: sum(1 for c in tuned.per_class if c.source == s) for s in ("tuned", "shrunk", "prior")}
    changed = sorted((c for c in tuned.per_class if c.source != "prior"),
                     key=lambda c: abs(c.threshold - c.prior), reverse=True)
    print(f"{images} images; {counts['tuned'] + counts['shrunk']} classes tuned "
          f"({counts['shrunk']} shrunk towards their prior), {counts['prior']} kept their threshold")
    for c in changed[:_SUMMARY_ROWS]:
        quality = " ".join(f"{k}={'-' if v is None else f'{v:.2f}'}"
                           for k, v in (("P", c.precision), ("R", c.recall), ("F1", c.f1)))
        print(f"  {names[c.index]}: {fmt(c.prior)} -> {fmt(c.threshold)}  "
              f"({c.positives} pos / {c.negatives} neg; {quality})")
    if len(changed) > _SUMMARY_ROWS:
        print(f"  ... {len(changed) - _SUMMARY_ROWS} more in {report}")
    print(f"wrote {output} and {report}")
