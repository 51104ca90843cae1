"""The `tag` command's JSON Lines output, with resume: lines already written are never redone.

Lines are matched to images by the file's identity (`ram_model.inference.inputs.image_identity`,
stored as `"realpath"`), not by the spelling of its path, so a resumed run given
`./a.png`, `/abs/a.png` or a symlinked folder skips what an earlier run did.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..errors import RamModelError
from .inputs import image_identity
from ..review.atomic_io import atomic_write_text

__all__ = ["ResumeState", "read_resume_state", "drop_paths", "append_lines", "row_identity", "resume_plan"]


def row_identity(row: dict[str, Any]) -> str:
    """The identity of the image a line is about (lines from before `realpath` was stored:
    their path, resolved against the current folder)."""
    return str(row.get("realpath") or image_identity(str(row["path"])))


class ResumeState:
    """Identities of the images already in an output file, and whether they ended in an error."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.versions: set[tuple[str, str]] = set()  # (model_version, policy)


def read_resume_state(path: Path) -> ResumeState:
    """Read an earlier run's output; a half-written last line (a crash) is cut off the file."""
    state = ResumeState()
    if not path.exists():
        return state
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    for lineno, raw in enumerate(data[:end].splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise RamModelError(f"{path}:{lineno} is not JSON ({e}); move the file away or use --overwrite") from e
        key = row_identity(row)
        state.done.add(key)
        if row.get("error"):
            state.failed.add(key)
        state.versions.add((str(row.get("model_version")), str(row.get("policy"))))
    return state


def drop_paths(path: Path, identities: set[str]) -> None:
    """Rewrite `path` without the lines of these images, so retried images are not listed twice."""
    with open(path, encoding="utf-8") as src:
        kept = [line for line in src if line.strip() and row_identity(json.loads(line)) not in identities]
    atomic_write_text(path, "".join(kept))


def append_lines(stream: Any, rows: Iterable[dict[str, Any]]) -> None:
    """Write whole lines and flush, so an interrupted run leaves only complete results behind."""
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    stream.flush()


def resume_plan(path: Path, paths: list[str], version: tuple[str, str], *, retry_errors: bool,
                hint: str = "") -> list[str]:
    """The images of `paths` still to do when appending to `path` (`tag` and `detect` share this).

    A file holding results of another (model_version, policy) is refused with a
    RamModelError, so two runs never mix (`hint` names what else the policy covers); with
    `retry_errors` the failed images' lines are dropped and they are redone."""
    state = read_resume_state(path)
    others = state.versions - {version}
    if others:
        raise RamModelError(f"{path} holds results of another model version or other thresholds{hint} "
                            f"({', '.join(sorted('/'.join(v) for v in others))}); use a new --output or --overwrite")
    redo = state.failed if retry_errors else set()
    if redo:
        drop_paths(path, redo)
    return [p for p in paths if image_identity(p) not in state.done or image_identity(p) in redo]
