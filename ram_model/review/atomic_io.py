"""Atomic file writes.

Exports and review results are often written next to the data a user cares about; a crash
or a full disk halfway through must leave either the old file or the new one, never a
truncated mix. This module is the one place that guarantees it, so the backend and the
plugin reuse it instead of opening files for writing themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_text"]


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` so that readers never see a partial file.

    The text goes to a temporary file in the same folder (a rename is only atomic within
    one file system), is flushed to disk, and then replaces ``path`` in one ``os.replace``.
    On any error the temporary file is removed and ``path`` is left as it was.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(folder / "a.txt", "hello").read_text()
    'hello'
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a directory")
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {target}: folder {folder} does not exist")
    # O_EXCL on a random name: no clobbering a concurrent writer's temp file; mode 0o666 lets
    # the umask decide the final permissions, as a plain open() would.
    tmp_name = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_folder(folder)
    return target


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2) -> Path:
    """Serialise ``data`` as UTF-8 JSON and write it atomically (see :func:`atomic_write_text`).

    Serialisation happens before the file is touched, so data that is not JSON-able raises
    ``TypeError`` and leaves the old file intact.

    >>> import tempfile, pathlib, json
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> json.loads(atomic_write_json(folder / "a.json", {"tags": ["dog"]}).read_text())
    {'tags': ['dog']}
    """
    text = json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) everywhere.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
