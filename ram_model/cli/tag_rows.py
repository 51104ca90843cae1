"""The tag command's rows and output file, shared by the in-process run (`main`) and the Ray run
(`ray_tag`): one resume rule, one row schema, one writer, so both write identical lines."""
from __future__ import annotations

import argparse
import hashlib
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterable

from tqdm import tqdm

from ..errors import ConfigError
from ..inference.inputs import IMAGE_EXTENSIONS, ExpandedPaths, expand_image_paths, image_identity

__all__ = ["CHUNK", "RANDOM_WEIGHTS_WARNING", "evidence_request", "expand_inputs", "plan_todo", "policy_digest",
           "result_row", "write_rows"]

RANDOM_WEIGHTS_WARNING = (
    "WARNING: this checkpoint has random weights (random:tiny or a test file); its tags mean nothing."
)
# Images handed to the engine per step: results are written (and flushed) after each.
CHUNK = 64


def expand_inputs(args: argparse.Namespace) -> ExpandedPaths:
    """The image files `args.paths` name (`tag` and `detect` read the same way), with a warning for each
    argument that matched none; a ConfigError (exit 2) when none is left."""
    paths = expand_image_paths(args.paths)
    for item in paths.unmatched:
        print(f"warning: {item!r} matched no image file ({', '.join(sorted(IMAGE_EXTENSIONS))})", file=sys.stderr)
    if not paths:
        raise ConfigError(f"no image files found in {' '.join(args.paths)}")
    return paths


def policy_digest(thresholds, policy, evidence: bool = False) -> str:
    """Identifies the thresholds and top-k a result was cut with (and whether rows carry evidence
    maps), so resume never mixes two."""
    h = hashlib.sha256(thresholds.tobytes())
    h.update(str(policy.top_k).encode())
    if evidence:  # only then, so files written before --evidence existed keep their digest
        h.update(b"evidence")
    return h.hexdigest()[:8]


def result_row(pred, engine, policy, thresholds, args: argparse.Namespace) -> dict[str, Any]:
    evidence = getattr(args, "evidence", False)
    row: dict[str, Any] = {"path": pred.source, "realpath": image_identity(pred.source),
                           "model_version": engine.model_version,
                           "policy": policy_digest(thresholds, policy, evidence)}
    if engine.random_weights:
        row["random_weights"] = True
    if pred.error is not None:
        row.update(tags=[], error=pred.error)
        if evidence:
            row["evidence"] = []
        return row
    row["tags"] = [t.to_dict() for t in policy.select(pred.probs, engine.vocab, thresholds)]
    if engine.open_set_classes:  # classes scored from text embeddings, not RAM's own tags
        open_names = set(engine.open_set_classes)
        for tag in row["tags"]:
            if tag["name"] in open_names:
                tag["open_set"] = True
        row["open_set_classes"] = list(engine.open_set_classes)
    row["error"] = None
    if args.all_scores:
        row["scores"] = {n: round(float(p), 6) for n, p in zip(engine.vocab.names, pred.probs)}
    if args.embedding and pred.embedding is not None:
        row["embedding"] = [round(float(x), 6) for x in pred.embedding]
    if evidence:
        row["evidence"] = [e.to_dict() for e in pred.evidence or ()]
    return row


def evidence_request(args: argparse.Namespace, policy, thresholds):
    """With --evidence: maps for exactly the tags the row lists (the policy's fired tags)."""
    if not getattr(args, "evidence", False):
        return None
    from ..evidence import EvidenceRequest

    return EvidenceRequest.for_fired(policy, thresholds)


def plan_todo(args: argparse.Namespace, paths: list[str], out_path: Path | None,
               version: tuple[str, str]) -> list[str]:
    """The images still to tag (the resume rule): `--overwrite` starts afresh, lines already in
    the output are skipped, `--retry-errors` drops failed ones to redo them. A file written by
    another model version or other thresholds is refused rather than mixed."""
    from ..inference.jsonl import resume_plan

    if out_path is not None and args.overwrite and out_path.exists():
        out_path.unlink()
    if out_path is None:
        return list(paths)
    hint = ""
    if hasattr(args, "evidence"):  # the tag command's rows differ with and without maps
        hint = f" (or rows {'without' if args.evidence else 'with'} --evidence)"
    todo = resume_plan(out_path, list(paths), version, retry_errors=args.retry_errors, hint=hint)
    skipped = len(paths) - len(todo)
    if skipped:
        print(f"resuming: {skipped} images already in {out_path}", file=sys.stderr)
    return todo


def write_rows(args: argparse.Namespace, out_path: Path | None, row_batches: Iterable[list[dict[str, Any]]],
               total: int, *, verb: str = "tagged") -> int:
    """Append each batch of result lines as it comes (flushed: a crash loses at most a torn last
    line, which resume cuts off), with progress; the exit code says whether anything failed
    (`verb`: what was done to an image, for those messages; `detect` shares this writer)."""
    from ..inference.jsonl import append_lines

    stream_ctx = open(out_path, "a", encoding="utf-8") if out_path else nullcontext(sys.stdout)
    failures = 0
    with stream_ctx as stream, tqdm(total=total, unit="img", disable=args.no_progress, file=sys.stderr) as bar:
        for rows in row_batches:
            failures += sum(1 for r in rows if r["error"])
            append_lines(stream, rows)
            bar.update(len(rows))
    if total and failures == total:
        print(f"error: none of the {total} images could be {verb} (see their 'error')", file=sys.stderr)
        return 1
    if failures:
        print(f"{failures} of {total} images could not be {verb} (see their 'error')", file=sys.stderr)
    return 0
